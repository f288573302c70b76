//! `dofs completions SHELL`, `dofs man` and `dofs serve --help`: made from
//! the command line's own definition, so they name every command.

use std::process::Command;

fn dofs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dofs"))
        .args(args)
        .output()
        .expect("run dofs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_shell_gets_a_completion_script_naming_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = dofs(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for command in ["serve", "cancel", "backup", "restore"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let (code, _, err) = dofs(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn the_man_page_is_roff_naming_the_commands() {
    let (code, page, err) = dofs(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH dofs"),
        "roff: {page:.200}"
    );
    assert!(page.contains(".SH NAME"), "{page:.200}");
    for command in ["serve", "cancel", "backup"] {
        assert!(page.contains(command), "the page names {command}");
    }
}

#[test]
fn serve_help_shows_each_setting_with_its_variable_and_default() {
    let (code, help, err) = dofs(&["serve", "--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        help.contains("[env: DOFS_SERVER_BIND] [default: 127.0.0.1:8080]"),
        "{help}"
    );
    assert!(help.contains("DOFS_STORAGE_DATA_DIR"), "{help}");
    for line in [
        "env: DOFS_QUEUE_MAX_RECEIVE_COUNT   default: 3",
        "env: DOFS_FULFILLMENT_SEED   default: (unset)",
    ] {
        assert!(help.contains(line), "{line} in {help}");
    }
}
