//! Every shipped campaign (campaigns/, ci/) parses and expands into valid
//! tests: a typo in one would otherwise surface only when it runs.

use std::process::Command;

#[test]
fn shipped_campaigns_expand() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(format!("{root}/campaigns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.push(format!("{root}/ci/incident-docker.toml").into());
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
            .args(["campaign", "--dry-run"])
            .arg(&f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("# "), "{}: no test listed", f.display());
    }
}
