//! A function refuses to start without saying how it authenticates: no deployment is left open by omission.

use std::process::Command;

#[test]
fn a_function_without_auth_mode_refuses_to_start_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_get-order"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        // A runtime API nobody answers: the function must stop before it ever polls it.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .env("AWS_LAMBDA_FUNCTION_NAME", "get-order")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "it started: {text}");
    assert!(
        text.contains("AUTH_MODE"),
        "the message names AUTH_MODE: {text}"
    );
}
