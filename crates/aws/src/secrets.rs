//! Secrets read once, at cold start: the `http` fulfillment mode's signing
//! secret, from the SSM SecureString parameter Terraform names
//! (`DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER`), or as given directly to the
//! local stack. Errors name the variable or the parameter, never the value.

use crate::error::code_of;
use crate::settings::{
    parse_secret, SecretSource, SettingsError, HTTP_SECRET, HTTP_SECRET_PARAMETER,
};

/// The signing secret `source` designates. A parameter is read with
/// decryption (the function's role needs `ssm:GetParameter` on it and
/// `kms:Decrypt` on its key); one that is missing, unreadable or not a
/// `whsec_` secret stops the cold start.
pub async fn fulfillment_secret(
    source: &SecretSource,
    ssm: &aws_sdk_ssm::Client,
) -> Result<dofs_fulfillment::Secret, SettingsError> {
    let name = match source {
        SecretSource::Value(text) => return parse_secret(HTTP_SECRET, text.expose()),
        SecretSource::Parameter(name) => name,
    };
    let unavailable = |why: String| SettingsError::Unavailable {
        name: HTTP_SECRET_PARAMETER,
        why,
    };
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            let why = match code_of(&e) {
                Some(code) => code.to_owned(),
                None => aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
            };
            unavailable(format!("cannot read the SSM parameter {name:?}: {why}"))
        })?;
    let value = out
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| unavailable(format!("the SSM parameter {name:?} has no value")))?;
    parse_secret(HTTP_SECRET_PARAMETER, &value).map_err(|e| match e {
        SettingsError::Secret { name: var, why } => SettingsError::Secret {
            name: var,
            why: format!("the value of the SSM parameter {name:?}: {why}"),
        },
        other => other,
    })
}
