//! The hosts table of docs/environments.md (hosts each shipped campaign
//! needs, separate and colocated, and the tests `--colocate` leaves out)
//! agrees with what `splitbrain campaign --dry-run [--colocate]` says.

use std::collections::BTreeMap;
use std::process::Command;

/// (tests, hosts needed: the most of any test, tests left out) of a
/// campaign's dry run.
fn dry_run(file: &std::path::Path, colocate: bool) -> (usize, usize, usize) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_splitbrain"));
    cmd.args(["campaign", "--dry-run"]);
    if colocate {
        cmd.arg("--colocate");
    }
    let out = cmd.arg(file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", file.display());
    let hosts: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("# hosts needed: "))
        .map(|n| n.parse().unwrap())
        .collect();
    let left_out = stderr
        .lines()
        .filter(|l| l.contains("not run with --colocate"))
        .count();
    (hosts.len(), hosts.into_iter().max().unwrap(), left_out)
}

/// The table's rows: campaign file -> (tests, separate, colocated, left out).
fn documented() -> BTreeMap<String, (usize, usize, usize, usize)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/environments.md"))
        .unwrap();
    doc.lines()
        .filter(|l| l.starts_with("| `") && l.contains(".toml` |"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let num = |s: &str| -> usize { s.parse().unwrap_or_else(|_| panic!("{l}")) };
            let left = if cells[5] == "none" {
                0
            } else {
                num(cells[5].split(':').next().unwrap())
            };
            (
                cells[1].trim_matches('`').to_string(),
                (num(cells[2]), num(cells[3]), num(cells[4]), left),
            )
        })
        .collect()
}

#[test]
fn hosts_table_matches_every_shipped_campaign() {
    let table = documented();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(format!("{root}/campaigns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert_eq!(table.len(), files.len(), "one row per campaign: {table:?}");
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let row = table
            .get(&name)
            .unwrap_or_else(|| panic!("{name} missing from docs/environments.md"));
        let (tests, separate, none_left) = dry_run(&f, false);
        let (colocated_tests, colocated, left_out) = dry_run(&f, true);
        assert_eq!(none_left, 0, "{name}");
        assert_eq!(colocated_tests + left_out, tests, "{name}");
        assert_eq!(
            *row,
            (tests, separate, colocated, left_out),
            "{name}: docs say (tests, separate, colocated, left out) = {row:?}"
        );
    }
}

/// `run --colocate` refuses, before touching anything, a partition that
/// shared nodes cannot make, and says what to do; without `--colocate`
/// the same options pass validation (and would start a run, so only the
/// refusal is run here).
#[test]
fn run_colocate_refuses_a_partition_shared_nodes_cannot_make() {
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["run", "--colocate", "--nemesis", "partition:zk-from-kafka"])
        .arg("--store")
        .arg(store.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("zk-from-kafka") && stderr.contains("cluster.colocate = false"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(store.path()).unwrap().next().is_none(),
        "a refused run stored something"
    );
}
