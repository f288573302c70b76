#!/usr/bin/env bash
# Install Terraform $TF_VERSION into /usr/local/bin on a CodeBuild image, checking the
# release's SHA256SUMS. Does nothing when that version is already there.
set -euo pipefail

TF_VERSION="${TF_VERSION:?set TF_VERSION}"
if command -v terraform >/dev/null 2>&1 && terraform version -json 2>/dev/null | grep -q "\"terraform_version\": *\"$TF_VERSION\""; then
    echo "terraform $TF_VERSION is installed"
    exit 0
fi

case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *)
        echo "unsupported machine $(uname -m)" >&2
        exit 1
        ;;
esac

base="https://releases.hashicorp.com/terraform/$TF_VERSION"
zip="terraform_${TF_VERSION}_linux_${arch}.zip"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/$zip" "$base/$zip"
curl -fsSL --retry 3 -o "$work/SHA256SUMS" "$base/terraform_${TF_VERSION}_SHA256SUMS"
(cd "$work" && grep " $zip\$" SHA256SUMS | sha256sum -c -)
unzip -o -q "$work/$zip" -d "$work/bin"
install -m 0755 "$work/bin/terraform" /usr/local/bin/terraform
terraform version
