//! A function refuses to start without saying how it authenticates: no deployment is left open by omission.

use std::process::Command;

/// A function binary with the variables every Lambda runtime API sets (`cargo lambda watch` too) and a database
/// nobody answers on; the runtime API nobody answers either: the function must stop before it ever polls it.
fn function(binary: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .env("AWS_LAMBDA_FUNCTION_NAME", "inventory-Function-AbC123")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    command
}

/// What a run printed, on either stream.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_function_without_auth_mode_refuses_to_start_and_says_why() {
    let output = function(env!("CARGO_BIN_EXE_get-order")).output().unwrap();
    let text = printed(&output);
    assert!(!output.status.success(), "it started: {text}");
    assert!(
        text.contains("AUTH_MODE"),
        "the message names AUTH_MODE: {text}"
    );
}

/// On Lambda itself (variables Lambda sets and `cargo lambda watch` does not), `off` and `local` are refused
/// at init, with a log line that says why: a misconfigured deploy is closed, not open.
#[test]
fn a_function_on_lambda_refuses_auth_mode_off_or_local() {
    for mode in ["off", "local"] {
        let output = function(env!("CARGO_BIN_EXE_create-order"))
            .env("AUTH_MODE", mode)
            .env("AUTH_LOCAL_KEY_FILE", "/nonexistent/key")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/inventory/create-order",
            )
            .output()
            .unwrap();
        let text = printed(&output);
        assert!(!output.status.success(), "{mode}: it started: {text}");
        assert!(
            text.contains("AUTH_MODE") && text.contains("only gateway is allowed on Lambda"),
            "{mode}: the message says why: {text}"
        );
    }
}
