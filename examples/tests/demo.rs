//! The README's first command: the demo binary runs the whole flow over
//! real sockets and TLS and exits 0 only if every step behaved.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[test]
fn demo_runs_and_every_step_behaves() {
    let dir = std::env::temp_dir().join(format!(
        "fapi-demo-test-{}-{}",
        std::process::id(),
        fapi_core::random::token(8).unwrap()
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let last = stdout.lines().rev().find(|l| l.contains("steps,")).unwrap();
    let (done, behaved) = {
        let n: Vec<usize> = last.split(' ').filter_map(|w| w.parse().ok()).collect();
        (n[0], n[1])
    };
    assert_eq!(done, behaved, "{last}");
    assert!(done >= 24, "{last}");
    for refusal in [
        "over tpp-a's certificate at /token: invalid_client",
        "which alice did not select: 403",
        "over its own certificate: 401",
        "consumed consent: 403",
        "next account read: 403 consent is Revoked",
        "after the revocation: invalid_grant",
        "verified against 1 signed checkpoint",
    ] {
        assert!(
            stdout.contains(refusal),
            "missing refusal `{refusal}`:\n{stdout}"
        );
    }
}

#[test]
fn demo_rejects_unknown_arguments() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
