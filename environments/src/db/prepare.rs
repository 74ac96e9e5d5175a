//! Preparing hosts the control node does not own (the `ssh` environment)
//! for ZooKeeper and Kafka, over SSH, all nodes in parallel:
//!
//! 1. the jar store on the node (default [`DEFAULT_NODE_ARTIFACTS_DIR`]) is
//!    made for the login user (with `sudo -n` when it cannot make it
//!    itself, see [`ssh::make_dir_command`]);
//! 2. one command asks the node what it has ([`probe_command`]): the
//!    version of `java`, the commands splitbrain runs there
//!    ([`NODE_COMMANDS`], [`PRIVILEGED_COMMANDS`]), its package manager and
//!    the jars already in the store;
//! 3. what is missing (Java 17+, iptables, ...) is installed with the
//!    node's package manager when [`PrepareOptions::install`] is set
//!    ([`install_command`], bounded by [`PrepareOptions::install_timeout`]);
//!    otherwise the error names the node, what is missing and the fix;
//! 4. the jars the node lacks are uploaded ([`Session::upload`]) to a
//!    temporary name, checked with `sha256sum` on the node and renamed to
//!    their SHA-256 (`<dir>/blobs/<sha256>`), so an interrupted upload never
//!    leaves a bad blob and a second preparation uploads nothing; a tree of
//!    symbolic links per cache content (`<dir>/trees/<id>/zookeeper/lib`,
//!    `.../kafka/lib`, `<id>` a digest of the file names and contents) is
//!    what the servers' class paths name, so several versions coexist.
//!
//! The tree is recorded with the environment ([`NodeArtifacts`], in its
//! state directory), where [`Artifacts::for_env`] finds it, and the store
//! is recorded as a directory `env down` keeps (so the next environment
//! reuses the jars) unless asked to purge it. The local jars' SHA-256 are
//! cached by path, size and modification time ([`HASH_CACHE_FILE`] in the
//! state root), so a run does not re-read ~60 MB of jars to hash them.

use crate::db::artifacts::Artifacts;
use crate::db::ClusterError;
use crate::nodes::ssh;
use crate::nodes::state::{state_root, KeptDir};
use crate::nodes::EnvState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use splitbrain_core::control::{shell_quote, Node, Session};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Where the jars go on the nodes unless told otherwise.
pub const DEFAULT_NODE_ARTIFACTS_DIR: &str = "/opt/splitbrain/artifacts";
/// Marker file in the node-side jar store (see [`ssh::make_dir_command`]).
pub const ARTIFACTS_MARKER: &str = ".splitbrain-artifacts";
/// The record of the prepared tree, in the environment's state directory.
pub const RECORD_FILE: &str = "node-artifacts.json";
/// The local jars' SHA-256 cache, in the state root.
pub const HASH_CACHE_FILE: &str = "artifact-sha256.json";
/// The oldest Java that Kafka 3.9 and ZooKeeper 3.8 run on here.
pub const MIN_JAVA: u32 = 17;
/// The cache's directories whose files go to the nodes.
pub const LIB_DIRS: [&str; 2] = ["zookeeper/lib", "kafka/lib"];

/// Commands splitbrain runs on a node as the login user (servers' scripts,
/// log following, evidence dumps, uploads, this preparation). On a bare
/// Debian they are all there (coreutils, util-linux, findutils, grep, sed,
/// mawk; `scp` comes with openssh-server's openssh-client); they are checked
/// anyway, so a minimal image fails here, by name, and not mid-run.
pub const NODE_COMMANDS: [&str; 16] = [
    "sh",
    "cat",
    "tr",
    "sed",
    "grep",
    "awk",
    "find",
    "tail",
    "stat",
    "seq",
    "timeout",
    "setsid",
    "sha256sum",
    "cut",
    "dirname",
    "scp",
];
/// Commands splitbrain runs on a node as root (through `sudo -n` for other
/// login users, whose PATH may lack `/usr/sbin`): the partitions' firewall.
pub const PRIVILEGED_COMMANDS: [&str; 4] = [
    "iptables",
    "iptables-restore",
    "ip6tables",
    "ip6tables-restore",
];

/// How to prepare the nodes.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// Install what is missing with the node's package manager
    /// (`env.install`, `env up --install`); otherwise missing Java or
    /// commands are an error.
    pub install: bool,
    /// The jar store on the nodes (`env.artifacts_dir`,
    /// `env up --artifacts-dir`), the same path on every node.
    pub artifacts_dir: PathBuf,
    /// The local artifact cache ([`Artifacts::cache_dir`]).
    pub cache: PathBuf,
    /// The `java` command on the nodes.
    pub java: String,
    /// Upload the jars. False when `$SPLITBRAIN_NODE_ARTIFACTS` says they
    /// are already on every node: then only Java and the commands are
    /// checked.
    pub upload: bool,
    /// The local SHA-256 cache file; `None`: hash every time.
    pub hash_cache: Option<PathBuf>,
    /// Bound on installing packages on one node.
    pub install_timeout: Duration,
    /// Bound on connecting to a node.
    pub connect_timeout: Duration,
}

impl PrepareOptions {
    /// Defaults: no install, the jars from `cache` to
    /// [`DEFAULT_NODE_ARTIFACTS_DIR`], `java` from PATH, hashes cached in
    /// the state root, installs bounded by 15 minutes.
    pub fn new(cache: &Path) -> PrepareOptions {
        PrepareOptions {
            install: false,
            artifacts_dir: PathBuf::from(DEFAULT_NODE_ARTIFACTS_DIR),
            cache: cache.to_path_buf(),
            java: "java".into(),
            upload: true,
            hash_cache: Some(state_root().join(HASH_CACHE_FILE)),
            install_timeout: Duration::from_secs(15 * 60),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl PrepareOptions {
    /// The options `splitbrain env up --kind ssh` and `splitbrain run` use:
    /// the jars from [`Artifacts::cache_dir`] into `artifacts_dir` (default
    /// [`DEFAULT_NODE_ARTIFACTS_DIR`]), not uploaded when
    /// `$SPLITBRAIN_NODE_ARTIFACTS` says they are on the nodes already (the
    /// same rule [`Artifacts::for_env`] follows).
    pub fn from_settings(install: bool, artifacts_dir: Option<&Path>) -> PrepareOptions {
        let mut opts = PrepareOptions::new(&Artifacts::cache_dir());
        opts.install = install;
        if let Some(dir) = artifacts_dir {
            opts.artifacts_dir = dir.to_path_buf();
        }
        opts.upload = std::env::var_os(super::artifacts::NODE_ARTIFACTS_ENV).is_none();
        opts
    }
}

/// One jar of the local cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalJar {
    /// Path inside the cache, e.g. `kafka/lib/kafka_2.13-3.9.1.jar`.
    pub rel: String,
    /// The local file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// What goes to the nodes: the jars and the tree's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Every jar, sorted by `rel`.
    pub jars: Vec<LocalJar>,
    /// The tree's name: the first 16 hex digits of the SHA-256 of the
    /// `rel`/`sha256` pairs, so the same content always gets the same tree.
    pub tree: String,
}

impl Manifest {
    /// Total size of the jars.
    pub fn bytes(&self) -> u64 {
        self.jars.iter().map(|j| j.size).sum()
    }

    /// Distinct blobs (a jar in both lib directories is one blob).
    pub fn blobs(&self) -> BTreeMap<&str, &LocalJar> {
        self.jars.iter().map(|j| (j.sha256.as_str(), j)).collect()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct HashEntry {
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lists the jars of `cache` ([`LIB_DIRS`]) with their SHA-256, taken from
/// `hash_cache` when a file's path, size and modification time match, else
/// computed (and the cache rewritten, best effort: an unwritable cache only
/// costs the hashing next time).
pub fn manifest(cache: &Path, hash_cache: Option<&Path>) -> Result<Manifest, ClusterError> {
    Artifacts::at(cache).check()?;
    let mut known: BTreeMap<String, HashEntry> = hash_cache
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut changed = false;
    let mut jars = Vec::new();
    for lib in LIB_DIRS {
        let dir = cache.join(lib);
        let entries = std::fs::read_dir(&dir).map_err(|source| ClusterError::State {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            // Follows symbolic links: a cache may link its jars.
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let abs = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let key = abs.to_string_lossy().into_owned();
            let sha256 = match known.get(&key) {
                Some(e)
                    if e.size == meta.len() && e.mtime_ns == mtime_ns && e.sha256.len() == 64 =>
                {
                    e.sha256.clone()
                }
                _ => {
                    let sha = hash_file(&path).map_err(|source| ClusterError::State {
                        path: path.clone(),
                        source,
                    })?;
                    known.insert(
                        key,
                        HashEntry {
                            size: meta.len(),
                            mtime_ns,
                            sha256: sha.clone(),
                        },
                    );
                    changed = true;
                    sha
                }
            };
            jars.push(LocalJar {
                rel: format!("{lib}/{file_name}"),
                path,
                size: meta.len(),
                sha256,
            });
        }
    }
    jars.sort_by(|a, b| a.rel.cmp(&b.rel));
    if changed {
        if let Some(p) = hash_cache {
            let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
            let written = p
                .parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&known).unwrap_or_default()))
                .and_then(|()| std::fs::rename(&tmp, p));
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!("cannot write the jar hash cache {}: {e}", p.display());
            }
        }
    }
    let mut tree = Sha256::new();
    for jar in &jars {
        tree.update(format!("{}\t{}\n", jar.rel, jar.sha256).as_bytes());
    }
    let tree = hex(&tree.finalize())[..16].to_string();
    Ok(Manifest { jars, tree })
}

/// A node's package manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    /// Debian, Ubuntu.
    AptGet,
    /// Fedora, RHEL, Rocky, Alma.
    Dnf,
}

impl PackageManager {
    /// The command's name.
    pub fn command(self) -> &'static str {
        match self {
            PackageManager::AptGet => "apt-get",
            PackageManager::Dnf => "dnf",
        }
    }

    /// Java packages to try, in order (the first one the node's package
    /// lists have is installed): 17 first, 21 where 17 is gone (Debian 13).
    pub fn java_packages(self) -> [&'static str; 2] {
        match self {
            PackageManager::AptGet => ["openjdk-17-jre-headless", "openjdk-21-jre-headless"],
            PackageManager::Dnf => ["java-17-openjdk-headless", "java-21-openjdk-headless"],
        }
    }

    /// The package that has `command`.
    pub fn package_of(self, command: &str) -> &'static str {
        let apt = self == PackageManager::AptGet;
        match command {
            "iptables" | "iptables-restore" | "ip6tables" | "ip6tables-restore" => "iptables",
            "awk" => {
                if apt {
                    "mawk"
                } else {
                    "gawk"
                }
            }
            "scp" => {
                if apt {
                    "openssh-client"
                } else {
                    "openssh-clients"
                }
            }
            "sed" => "sed",
            "grep" => "grep",
            "find" => "findutils",
            "setsid" => "util-linux",
            "sh" => {
                if apt {
                    "dash"
                } else {
                    "bash"
                }
            }
            _ => "coreutils",
        }
    }
}

/// What one command found on a node ([`probe_command`], [`parse_probe`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Java's major version, if `java -version` said one.
    pub java: Option<u32>,
    /// What `java -version` printed (first lines), for messages.
    pub java_text: String,
    /// [`NODE_COMMANDS`] not found.
    pub missing: Vec<String>,
    /// [`PRIVILEGED_COMMANDS`] not found (as root).
    pub privileged_missing: Vec<String>,
    /// What sudo said when it refused (non-root login users only).
    pub sudo_refused: Option<String>,
    /// apt-get or dnf, if either is there.
    pub package_manager: Option<PackageManager>,
    /// Blobs in the store (SHA-256 names).
    pub blobs: BTreeSet<String>,
    /// Trees in the store.
    pub trees: BTreeSet<String>,
}

const SECTION: &str = "@@splitbrain-probe:";

/// The one command that asks a node for its [`NodeFacts`]; `java` is the
/// java command, `store` the jar store. It also removes temporary uploads
/// older than an hour (an interrupted preparation's).
pub fn probe_command(node: &Node, java: &str, store: &Path) -> String {
    let store = shell_quote(&store.to_string_lossy());
    let java = shell_quote(java);
    let check = |cmds: &[&str]| {
        format!(
            "for c in {}; do command -v \"$c\" >/dev/null 2>&1 || echo \"$c\"; done",
            cmds.join(" ")
        )
    };
    let privileged = node.sudo(&check(&PRIVILEGED_COMMANDS));
    format!(
        "echo {SECTION}java; {java} -version 2>&1 | head -n 3; \
         echo {SECTION}missing; {user}; \
         echo {SECTION}privileged; {privileged} 2>&1; \
         echo {SECTION}pm; for c in apt-get dnf; do if command -v $c >/dev/null 2>&1; then echo $c; break; fi; done; \
         find {store}/blobs -maxdepth 1 -name '.tmp.*' -mmin +60 -exec rm -f {{}} + 2>/dev/null; \
         echo {SECTION}blobs; ls {store}/blobs 2>/dev/null; \
         echo {SECTION}trees; ls {store}/trees 2>/dev/null; true",
        user = check(&NODE_COMMANDS),
    )
}

/// Java's major version from `java -version`'s output: `openjdk version
/// "17.0.9"` → 17, `"1.8.0_392"` → 8, `"21-ea"` → 21.
pub fn java_major(text: &str) -> Option<u32> {
    let start = text.find("version \"")? + "version \"".len();
    let version = &text[start..];
    let version = &version[..version.find('"')?];
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

/// Reads [`probe_command`]'s output.
pub fn parse_probe(stdout: &str) -> NodeFacts {
    let mut facts = NodeFacts::default();
    let mut section = "";
    let mut java_lines = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix(SECTION) {
            section = match name {
                "java" | "missing" | "privileged" | "pm" | "blobs" | "trees" => name,
                _ => "",
            };
            continue;
        }
        let word = line.trim();
        if word.is_empty() {
            continue;
        }
        match section {
            "java" => java_lines.push(word.to_string()),
            "missing" => facts.missing.push(word.to_string()),
            "privileged" => {
                if PRIVILEGED_COMMANDS.contains(&word) {
                    facts.privileged_missing.push(word.to_string());
                } else if word.contains("sudo") {
                    // Several lines (a warning, then the refusal): keep all.
                    let said = match facts.sudo_refused.take() {
                        Some(before) => format!("{before} / {word}"),
                        None => word.to_string(),
                    };
                    facts.sudo_refused = Some(said);
                }
            }
            "pm" => {
                facts.package_manager = match word {
                    "apt-get" => Some(PackageManager::AptGet),
                    "dnf" => Some(PackageManager::Dnf),
                    _ => facts.package_manager,
                }
            }
            "blobs" if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()) => {
                facts.blobs.insert(word.to_string());
            }
            "trees" if !word.starts_with('.') => {
                facts.trees.insert(word.to_string());
            }
            _ => {}
        }
    }
    facts.java_text = java_lines.join(" / ");
    facts.java = java_major(&facts.java_text);
    facts
}

/// The command (to run as root) that installs `packages` and, when
/// `java`, the first Java package of [`PackageManager::java_packages`] the
/// node's package lists have.
pub fn install_command(pm: PackageManager, java: bool, packages: &[&str]) -> String {
    let [j17, j21] = pm.java_packages();
    let pick = if java {
        match pm {
            PackageManager::AptGet => format!(
                "pick=; for p in {j17} {j21}; do if apt-cache show \"$p\" 2>/dev/null | grep -q '^Package:'; then pick=$p; break; fi; done; \
                 [ -n \"$pick\" ] || {{ echo 'neither {j17} nor {j21} is in the package lists' >&2; exit 1; }}; "
            ),
            PackageManager::Dnf => format!(
                "pick={j17}; dnf -q list --available {j17} >/dev/null 2>&1 || dnf -q list --installed {j17} >/dev/null 2>&1 || pick={j21}; "
            ),
        }
    } else {
        "pick=; ".into()
    };
    let list = packages.join(" ");
    match pm {
        // Slim Debian images lack /usr/share/man/man1, which the JRE's
        // postinst needs for its alternatives' man pages. A fresh VM's
        // unattended-upgrades may hold dpkg's lock for a while: wait for it.
        PackageManager::AptGet => format!(
            "export DEBIAN_FRONTEND=noninteractive; mkdir -p /usr/share/man/man1; \
             apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null || exit 1; {pick}\
             apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $pick {list}"
        ),
        PackageManager::Dnf => format!("{pick}dnf install -y -q $pick {list}"),
    }
}

/// What preparing did on one node (recorded in the run's history).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodePrepared {
    /// The node.
    pub node: String,
    /// Java's major version on the node afterwards.
    pub java_version: u32,
    /// Java was installed by this preparation.
    pub java_installed: bool,
    /// Packages installed (Java's included).
    pub installed: Vec<String>,
    /// Jars uploaded (distinct blobs).
    pub jars_uploaded: usize,
    /// Jars the node already had.
    pub jars_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// The tree of this content was made now (it was not there).
    pub tree_made: bool,
    /// The topmost directory made for the jar store, if any.
    pub dir_created: Option<PathBuf>,
    /// Seconds this node took.
    pub seconds: f64,
}

/// What preparing did (the `prepare` event of the run's history).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// The jar store on the nodes (`None` when nothing was uploaded).
    pub artifacts_dir: Option<PathBuf>,
    /// The tree the servers use (`None` when nothing was uploaded).
    pub tree: Option<String>,
    /// Jars in the tree.
    pub jars: usize,
    /// Their total size.
    pub jar_bytes: u64,
    /// Seconds spent hashing the local jars (near 0 with the hash cache).
    pub hash_seconds: f64,
    /// Wall-clock seconds of the whole preparation.
    pub seconds: f64,
    /// Per node, in node order.
    pub nodes: Vec<NodePrepared>,
}

impl PrepareReport {
    /// Bytes uploaded to all nodes.
    pub fn bytes_uploaded(&self) -> u64 {
        self.nodes.iter().map(|n| n.bytes_uploaded).sum()
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        let installed: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !n.installed.is_empty())
            .map(|n| format!("{}: {}", n.node, n.installed.join(" ")))
            .collect();
        format!(
            "prepared {} node(s) in {:.1}s: Java {} on every node{}; {}",
            self.nodes.len(),
            self.seconds,
            self.nodes
                .iter()
                .map(|n| n.java_version)
                .min()
                .map(|v| format!("{v}+"))
                .unwrap_or_default(),
            if installed.is_empty() {
                String::new()
            } else {
                format!(" (installed {})", installed.join(", "))
            },
            match &self.tree {
                Some(tree) => format!(
                    "jars: {} uploaded ({:.1} MB), {} already there, tree {}",
                    self.nodes.iter().map(|n| n.jars_uploaded).sum::<usize>(),
                    self.bytes_uploaded() as f64 / 1e6,
                    self.nodes.iter().map(|n| n.jars_present).sum::<usize>(),
                    tree
                ),
                None => format!(
                    "jars not uploaded (${} names them)",
                    super::artifacts::NODE_ARTIFACTS_ENV
                ),
            }
        )
    }
}

/// Where a prepared environment's jars are on its nodes, recorded in its
/// state directory ([`RECORD_FILE`]) for [`Artifacts::for_env`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeArtifacts {
    /// The jar store.
    pub dir: PathBuf,
    /// The tree's name.
    pub tree: String,
    /// The `java` command on the nodes.
    pub java: String,
}

impl NodeArtifacts {
    /// The tree, as [`Artifacts`] (its root holds `zookeeper/lib` and
    /// `kafka/lib`).
    pub fn artifacts(&self) -> Artifacts {
        Artifacts::on_nodes(&tree_dir(&self.dir, &self.tree), &self.java)
    }

    /// The record of environment `env`, if it was prepared.
    pub fn load(env: &str) -> Result<Option<NodeArtifacts>, ClusterError> {
        let path = EnvState::dir_of(env).join(RECORD_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| ClusterError::BadLayout { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ClusterError::State { path, source }),
        }
    }

    fn save(&self, env: &str) -> Result<(), ClusterError> {
        let path = EnvState::dir_of(env).join(RECORD_FILE);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| ClusterError::State { path, source })
    }
}

/// `<store>/trees/<tree>`.
pub fn tree_dir(store: &Path, tree: &str) -> PathBuf {
    store.join("trees").join(tree)
}

/// The command that checks uploaded temporary blobs (`.tmp.<sha>.<tag>`)
/// against their names and renames them into place; a mismatch removes it
/// and fails.
pub fn finish_uploads_command(store: &Path, shas: &[&str], tag: &str) -> String {
    let blobs = shell_quote(&store.join("blobs").to_string_lossy());
    format!(
        "cd {blobs} && for s in {}; do t=.tmp.$s.{tag}; \
         if [ \"$(sha256sum < \"$t\" | cut -c1-64)\" = \"$s\" ]; then mv -f \"$t\" \"$s\"; \
         else rm -f \"$t\"; echo \"upload of blob $s arrived corrupted\" >&2; exit 1; fi; done",
        shas.join(" ")
    )
}

/// The command that makes `<store>/trees/<tree>` (links into the blobs)
/// unless it exists: built under a temporary name and renamed, so a tree
/// is complete or absent; then checks no link dangles.
pub fn make_tree_command(store: &Path, manifest: &Manifest, tag: &str) -> String {
    let trees = shell_quote(&store.join("trees").to_string_lossy());
    let tree = &manifest.tree;
    let mut links = String::new();
    for jar in &manifest.jars {
        // From <store>/trees/<tree>/<x>/lib up to <store>.
        links.push_str(&format!(
            " && ln -s ../../../../blobs/{} \"$t\"/{}",
            jar.sha256,
            shell_quote(&jar.rel)
        ));
    }
    let dirs: Vec<String> = LIB_DIRS.iter().map(|d| format!("\"$t\"/{d}")).collect();
    format!(
        "mkdir -p {trees} && cd {trees} && if [ ! -d {tree} ]; then t=.tmp.{tree}.{tag}; rm -rf \"$t\"; \
         mkdir -p {}{links} && {{ mv -T \"$t\" {tree} 2>/dev/null || rm -rf \"$t\"; }}; fi; \
         [ -d {tree} ] && [ -z \"$(find {tree} -xtype l | head -n 1)\" ]",
        dirs.join(" ")
    )
}

/// What the node lacks, as a list for messages and installs: `java` for
/// Java 17+, else command names.
fn lacking(facts: &NodeFacts) -> Vec<String> {
    let mut missing = Vec::new();
    if facts.java.is_none_or(|v| v < MIN_JAVA) {
        missing.push("java".to_string());
    }
    missing.extend(facts.missing.iter().cloned());
    missing.extend(facts.privileged_missing.iter().cloned());
    missing
}

fn describe(facts: &NodeFacts, java: &str, missing: &[String]) -> String {
    missing
        .iter()
        .map(|m| {
            if m == "java" {
                format!(
                    "Java {MIN_JAVA}+ (`{java} -version` said: {})",
                    if facts.java_text.is_empty() {
                        "nothing"
                    } else {
                        &facts.java_text
                    }
                )
            } else {
                format!("`{m}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The packages that provide `missing` with `pm`.
fn packages_for(pm: PackageManager, missing: &[String]) -> (bool, Vec<&'static str>) {
    let java = missing.iter().any(|m| m == "java");
    let mut packages: Vec<&'static str> = missing
        .iter()
        .filter(|m| *m != "java")
        .map(|m| pm.package_of(m))
        .collect();
    packages.sort_unstable();
    packages.dedup();
    (java, packages)
}

/// The message for a node that lacks `missing` and may not install it.
pub fn missing_message(node: &Node, facts: &NodeFacts, java: &str, missing: &[String]) -> String {
    let how = match facts.package_manager {
        Some(pm) => {
            let (j, mut packages) = packages_for(pm, missing);
            if j {
                packages.insert(0, pm.java_packages()[0]);
            }
            format!(
                "set `env.install = true` in the test file (or pass `--install` to `splitbrain env up`) \
                 to install {} with {}, or install it yourself",
                packages.join(" "),
                pm.command()
            )
        }
        None => "the host has neither apt-get nor dnf: install it yourself".to_string(),
    };
    format!(
        "{} ({}): missing {}; {how}",
        node.name,
        node.host_name(),
        describe(facts, java, missing)
    )
}

/// The error for what sudo printed when the probe checked the privileged
/// commands, if it refused (a password, a tty, not in sudoers); a warning
/// such as `sudo: unable to resolve host` is not a refusal.
pub fn sudo_refusal(node: &Node, said: &str) -> Option<String> {
    const WHAT: &str = "checking iptables (partitions run it as root)";
    if let Some(e) = ssh::sudo_problem(node, WHAT, said) {
        return Some(e.to_string());
    }
    let refused = ["tty", "sudoers", "not allowed", "may not run"]
        .iter()
        .any(|w| said.contains(w));
    refused.then(|| {
        format!(
            "{}: {WHAT} needs root, and user {}'s `sudo -n` refused ({said}); allow it passwordless sudo without a terminal on that host (`{} ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/splitbrain, and no `Defaults requiretty`), or log in as root",
            node.name, node.user, node.user
        )
    })
}

/// Progress from a node's thread: (node, what it is doing now; `None`: done).
type Step = (String, Option<String>);

fn prepare_node(
    node: &Node,
    opts: &PrepareOptions,
    manifest: Option<&Manifest>,
    steps: &mpsc::Sender<Step>,
    cancel: Option<&AtomicBool>,
) -> Result<NodePrepared, String> {
    let started = Instant::now();
    let stop = |before: &str| match cancel {
        Some(flag) if flag.load(Ordering::SeqCst) => {
            Err(format!("{}: interrupted before {before}", node.name))
        }
        _ => Ok(()),
    };
    let say = |what: String| {
        let _ = steps.send((node.name.clone(), Some(what)));
    };
    let name = &node.name;
    say("connecting".into());
    let mut s = Session::connect(node, opts.connect_timeout).map_err(|e| e.to_string())?;
    let t = Duration::from_secs(60);
    let store = &opts.artifacts_dir;
    let mut dir_created = None;
    if manifest.is_some() {
        let cmd = format!(
            "{} && mkdir -p {}",
            ssh::make_dir_command(node, store, ARTIFACTS_MARKER),
            ["blobs", "trees"]
                .iter()
                .map(|d| shell_quote(&store.join(d).to_string_lossy()))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = ssh::exec_privileged(&mut s, &cmd, "making the jar store", t)
            .map_err(|e| e.to_string())?;
        dir_created = ssh::made_top(&out.stdout);
    }
    say("checking Java and commands".into());
    let probe = probe_command(node, &opts.java, store);
    let mut facts = parse_probe(&s.exec(&probe, t).map_err(|e| e.to_string())?.stdout);
    if let Some(refused) = &facts.sudo_refused {
        if let Some(problem) = sudo_refusal(node, refused) {
            return Err(problem);
        }
    }
    let mut missing = lacking(&facts);
    let mut installed = Vec::new();
    let java_before = facts.java.filter(|v| *v >= MIN_JAVA);
    if !missing.is_empty() {
        if !opts.install {
            return Err(missing_message(node, &facts, &opts.java, &missing));
        }
        let Some(pm) = facts.package_manager else {
            return Err(missing_message(node, &facts, &opts.java, &missing));
        };
        let (java, packages) = packages_for(pm, &missing);
        stop("installing packages")?;
        say(format!(
            "installing {}{} with {}",
            if java { "Java " } else { "" },
            packages.join(" "),
            pm.command()
        ));
        // The whole install runs as root with its node-side deadline inside
        // sudo, so a timed-out apt/dnf is stopped, not left holding the lock.
        let cmd = install_command(pm, java, &packages);
        s.exec_privileged_ok(&cmd, opts.install_timeout).map_err(|e| {
            format!(
                "{name}: installing {} with {} failed: {e}; install it yourself, or fix the package manager and run again",
                missing.join(" "),
                pm.command()
            )
        })?;
        installed.extend(packages.iter().map(|p| p.to_string()));
        facts = parse_probe(&s.exec(&probe, t).map_err(|e| e.to_string())?.stdout);
        missing = lacking(&facts);
        if java {
            installed.insert(0, format!("java {}", facts.java.unwrap_or(0)));
        }
        if !missing.is_empty() {
            return Err(format!(
                "{name}: still missing {} after installing it with {}{}",
                describe(&facts, &opts.java, &missing),
                pm.command(),
                if missing.iter().any(|m| m == "java") {
                    "; make `java` on the login user's PATH run Java 17+ (`update-alternatives --config java`)"
                } else {
                    ""
                }
            ));
        }
    }
    let mut report = NodePrepared {
        node: name.clone(),
        java_version: facts.java.unwrap_or(0),
        java_installed: java_before.is_none(),
        installed,
        jars_uploaded: 0,
        jars_present: 0,
        bytes_uploaded: 0,
        tree_made: false,
        dir_created,
        seconds: 0.0,
    };
    if let Some(manifest) = manifest {
        let blobs = manifest.blobs();
        let needed: Vec<&LocalJar> = blobs
            .iter()
            .filter(|(sha, _)| !facts.blobs.contains(**sha))
            .map(|(_, jar)| *jar)
            .collect();
        report.jars_present = blobs.len() - needed.len();
        // Unique per node and process: nodes sharing a file system (netns)
        // or two preparations at once never write the same temporary file.
        let tag = format!("{}-{}", name, std::process::id());
        if !needed.is_empty() {
            let total: u64 = needed.iter().map(|j| j.size).sum();
            for (i, jar) in needed.iter().enumerate() {
                stop("uploading every jar (the ones uploaded are kept)")?;
                say(format!(
                    "uploading jars: {}/{} ({:.1} of {:.1} MB)",
                    i,
                    needed.len(),
                    report.bytes_uploaded as f64 / 1e6,
                    total as f64 / 1e6
                ));
                let remote = store
                    .join("blobs")
                    .join(format!(".tmp.{}.{tag}", jar.sha256));
                s.upload(&jar.path, &remote, 0o644)
                    .map_err(|e| e.to_string())?;
                report.bytes_uploaded += jar.size;
            }
            let shas: Vec<&str> = needed.iter().map(|j| j.sha256.as_str()).collect();
            s.exec_ok(&finish_uploads_command(store, &shas, &tag), t)
                .map_err(|e| e.to_string())?;
            report.jars_uploaded = needed.len();
        }
        if !facts.trees.contains(&manifest.tree) || !needed.is_empty() {
            say("linking the jar tree".into());
            s.exec_ok(&make_tree_command(store, manifest, &tag), t)
                .map_err(|e| format!("{name}: making the jar tree {}: {e}", manifest.tree))?;
            report.tree_made = !facts.trees.contains(&manifest.tree);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Prepares every node of `state` in parallel (see the module docs) and,
/// when jars were uploaded, records where they are ([`NodeArtifacts`]) and
/// the jar store as a directory `env down` keeps. `progress` gets a line
/// when a node starts a long step and, while any node works, every
/// 15 seconds, so a long install does not look hung. When `cancel` is set
/// (Ctrl-C), each node stops before its next install or upload (a running
/// install finishes or reaches its time bound) and the preparation fails.
pub fn prepare(
    state: &mut EnvState,
    opts: &PrepareOptions,
    progress: &mut dyn FnMut(&str),
    cancel: Option<&AtomicBool>,
) -> Result<PrepareReport, ClusterError> {
    let started = Instant::now();
    if !opts.artifacts_dir.is_absolute() || opts.artifacts_dir.parent().is_none() {
        return Err(ClusterError::Layout(format!(
            "the node-side artifacts directory {} must be an absolute path other than /",
            opts.artifacts_dir.display()
        )));
    }
    let manifest = if opts.upload {
        Some(manifest(&opts.cache, opts.hash_cache.as_deref())?)
    } else {
        None
    };
    let hash_seconds = started.elapsed().as_secs_f64();
    let (tx, rx) = mpsc::channel::<Step>();
    let results: Vec<Result<NodePrepared, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = state
            .nodes
            .iter()
            .map(|node| {
                let tx = tx.clone();
                let manifest = manifest.as_ref();
                scope.spawn(move || {
                    let result = prepare_node(node, opts, manifest, &tx, cancel);
                    let _ = tx.send((node.name.clone(), None));
                    result
                })
            })
            .collect();
        drop(tx);
        let mut doing: BTreeMap<String, (String, Instant)> = BTreeMap::new();
        let mut last_tick = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok((node, Some(step))) => {
                    let long = step.starts_with("installing")
                        || (step.starts_with("uploading") && step.contains(": 0/"));
                    if long {
                        progress(&format!("{node}: {step}"));
                    }
                    let since = match doing.get(&node) {
                        Some((old, since)) if old.split(':').next() == step.split(':').next() => {
                            *since
                        }
                        _ => Instant::now(),
                    };
                    doing.insert(node, (step, since));
                }
                Ok((node, None)) => {
                    doing.remove(&node);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if last_tick.elapsed() >= Duration::from_secs(15) && !doing.is_empty() {
                last_tick = Instant::now();
                let now: Vec<String> = doing
                    .iter()
                    .map(|(n, (step, since))| {
                        format!("{n}: {step} ({}s)", since.elapsed().as_secs())
                    })
                    .collect();
                progress(&format!("still preparing: {}", now.join("; ")));
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("preparing panicked".into()))
            })
            .collect()
    });
    let mut nodes = Vec::new();
    let mut problems = Vec::new();
    for (node, result) in state.nodes.iter().zip(results) {
        match result {
            Ok(r) => nodes.push(r),
            Err(e) if e.starts_with(&node.name) => problems.push(e),
            Err(e) => problems.push(format!("{}: {e}", node.name)),
        }
    }
    if !problems.is_empty() {
        return Err(ClusterError::NotPrepared { problems });
    }
    if let Some(manifest) = &manifest {
        NodeArtifacts {
            dir: opts.artifacts_dir.clone(),
            tree: manifest.tree.clone(),
            java: opts.java.clone(),
        }
        .save(&state.name)?;
        if let Some(details) = state.ssh.as_mut() {
            let kept = KeptDir {
                dir: opts.artifacts_dir.clone(),
                marker: ARTIFACTS_MARKER.into(),
            };
            if !details.kept_dirs.contains(&kept) {
                details.kept_dirs.push(kept);
                state.save().map_err(ClusterError::Nodes)?;
            }
        }
    }
    Ok(PrepareReport {
        artifacts_dir: manifest.as_ref().map(|_| opts.artifacts_dir.clone()),
        tree: manifest.as_ref().map(|m| m.tree.clone()),
        jars: manifest.as_ref().map_or(0, |m| m.jars.len()),
        jar_bytes: manifest.as_ref().map_or(0, Manifest::bytes),
        hash_seconds,
        seconds: started.elapsed().as_secs_f64(),
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(user: &str) -> Node {
        Node {
            name: "n1".into(),
            address: "10.88.3.2".parse().unwrap(),
            host: Some("db1.example".into()),
            port: 22,
            user: user.into(),
            key_path: "/k".into(),
            known_hosts: "/kh".into(),
            dir: "/srv/n1".into(),
        }
    }

    use crate::nodes::ssh::tests::sh;

    /// A small cache: two jars in zookeeper/lib, one of them also in
    /// kafka/lib (the same content: one blob).
    fn fake_cache(dir: &Path) {
        for (lib, name, content) in [
            ("zookeeper/lib", "zookeeper-3.8.4.jar", "zk"),
            ("zookeeper/lib", "netty.jar", "netty"),
            ("kafka/lib", "kafka_2.13-3.9.1.jar", "kafka"),
            ("kafka/lib", "netty.jar", "netty"),
        ] {
            std::fs::create_dir_all(dir.join(lib)).unwrap();
            std::fs::write(dir.join(lib).join(name), content).unwrap();
        }
    }

    #[test]
    fn java_versions_are_read_from_java_version() {
        let cases = [
            ("openjdk version \"17.0.15\" 2025-04-15", Some(17)),
            ("java version \"1.8.0_392\"", Some(8)),
            ("openjdk version \"21-ea\" 2023-09-19", Some(21)),
            ("openjdk version \"11.0.2\"", Some(11)),
            ("sh: 1: java: not found", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(java_major(text), want, "{text}");
        }
    }

    #[test]
    fn the_probe_output_is_parsed_into_facts() {
        let sha = "a".repeat(64);
        let out = format!(
            "{SECTION}java\nopenjdk version \"17.0.9\" 2023-10-17\n{SECTION}missing\nawk\n\
             {SECTION}privileged\niptables\nip6tables\n{SECTION}pm\napt-get\n\
             {SECTION}blobs\n{sha}\nnot-a-blob\n{SECTION}trees\n0123456789abcdef\n"
        );
        let facts = parse_probe(&out);
        assert_eq!(facts.java, Some(17));
        assert_eq!(facts.missing, vec!["awk"]);
        assert_eq!(facts.privileged_missing, vec!["iptables", "ip6tables"]);
        assert_eq!(facts.package_manager, Some(PackageManager::AptGet));
        assert_eq!(facts.blobs.iter().collect::<Vec<_>>(), vec![&sha]);
        assert!(facts.trees.contains("0123456789abcdef"));
        let refused = parse_probe(&format!(
            "{SECTION}privileged\nsudo: a password is required\n"
        ));
        assert_eq!(
            refused.sudo_refused.as_deref(),
            Some("sudo: a password is required")
        );
    }

    /// The probe run for real on this machine (a root login: no sudo): a
    /// java that is not there is reported as missing, the one on PATH (if
    /// any) by version, and the store's blobs are listed.
    #[test]
    fn the_probe_runs_and_finds_java_commands_and_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let sha = "b".repeat(64);
        std::fs::create_dir_all(tmp.path().join("blobs")).unwrap();
        std::fs::write(tmp.path().join("blobs").join(&sha), b"x").unwrap();
        std::fs::write(tmp.path().join("blobs/.tmp.x.n1-1"), b"x").unwrap();
        let (_, out, _) = sh(&probe_command(
            &node("root"),
            "/nonexistent/java",
            tmp.path(),
        ));
        let facts = parse_probe(&out);
        assert_eq!(facts.java, None, "{out}");
        assert!(facts.blobs.contains(&sha), "{out}");
        assert_eq!(
            facts.blobs.len(),
            1,
            "temporary uploads are not blobs: {out}"
        );
        assert!(lacking(&facts).contains(&"java".to_string()));
        let msg = missing_message(&node("root"), &facts, "/nonexistent/java", &lacking(&facts));
        assert!(
            msg.starts_with("n1 (db1.example): missing Java 17+"),
            "{msg}"
        );
        assert!(msg.contains("/nonexistent/java -version"), "{msg}");
        assert!(
            msg.contains("env.install = true") || msg.contains("install it yourself"),
            "{msg}"
        );
        if let Some(v) = java_major(&sh("java -version 2>&1").1) {
            let (_, out, _) = sh(&probe_command(&node("root"), "java", tmp.path()));
            assert_eq!(parse_probe(&out).java, Some(v), "{out}");
        }
    }

    #[test]
    fn sudo_refusals_stop_preparation_and_its_warnings_do_not() {
        let bob = node("bob");
        for said in [
            "sudo: a password is required",
            "sudo: sorry, you must have a tty to run sudo",
            "bob is not in the sudoers file.  This incident will be reported.",
        ] {
            let err = sudo_refusal(&bob, said).unwrap_or_else(|| panic!("{said}"));
            assert!(err.contains("n1") && err.contains("NOPASSWD"), "{err}");
        }
        assert_eq!(
            sudo_refusal(
                &bob,
                "sudo: unable to resolve host db1: Name or service not known"
            ),
            None
        );
    }

    #[test]
    fn missing_things_name_the_node_the_packages_and_the_fix() {
        let facts = NodeFacts {
            java: Some(11),
            java_text: "openjdk version \"11.0.2\"".into(),
            privileged_missing: vec!["iptables".into(), "iptables-restore".into()],
            package_manager: Some(PackageManager::AptGet),
            ..Default::default()
        };
        let missing = lacking(&facts);
        assert_eq!(missing, vec!["java", "iptables", "iptables-restore"]);
        let msg = missing_message(&node("root"), &facts, "java", &missing);
        assert!(msg.contains("n1 (db1.example): missing Java 17+ (`java -version` said: openjdk version \"11.0.2\"), `iptables`, `iptables-restore`"), "{msg}");
        assert!(
            msg.contains("`env.install = true`") && msg.contains("--install"),
            "{msg}"
        );
        assert!(
            msg.contains("openjdk-17-jre-headless iptables with apt-get"),
            "{msg}"
        );
        let none = NodeFacts {
            package_manager: None,
            ..facts
        };
        let msg = missing_message(&node("root"), &none, "java", &missing);
        assert!(msg.contains("neither apt-get nor dnf"), "{msg}");
    }

    #[test]
    fn install_commands_use_the_package_manager_and_sudo_for_other_users() {
        let apt = install_command(PackageManager::AptGet, true, &["iptables"]);
        assert!(apt.contains("DEBIAN_FRONTEND=noninteractive"), "{apt}");
        assert!(
            apt.contains("apt-get -o DPkg::Lock::Timeout=300 update"),
            "{apt}"
        );
        assert!(
            apt.contains("for p in openjdk-17-jre-headless openjdk-21-jre-headless"),
            "{apt}"
        );
        assert!(
            apt.ends_with("install -y -q --no-install-recommends $pick iptables"),
            "{apt}"
        );
        let dnf = install_command(PackageManager::Dnf, true, &["iptables"]);
        assert!(dnf.contains("pick=java-17-openjdk-headless"), "{dnf}");
        assert!(dnf.ends_with("dnf install -y -q $pick iptables"), "{dnf}");
        let only = install_command(PackageManager::AptGet, false, &["iptables"]);
        assert!(!only.contains("openjdk"), "{only}");
        assert_eq!(PackageManager::Dnf.package_of("scp"), "openssh-clients");
        assert_eq!(PackageManager::AptGet.package_of("ip6tables"), "iptables");
        let wrapped = node("bob").sudo(&apt);
        assert!(
            wrapped.starts_with("sudo -n -- sh -c 'export DEBIAN_FRONTEND"),
            "{wrapped}"
        );
        assert_eq!(node("root").sudo(&apt), apt);
    }

    /// Commands that cannot run here (installs, a non-root login's sudo)
    /// are at least valid shell, outside and inside their `sudo sh -c`.
    #[test]
    fn every_generated_command_is_valid_shell() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        fake_cache(&cache);
        let m = manifest(&cache, None).unwrap();
        let store = Path::new("/opt/split brain/artifacts");
        let mut commands = vec![
            finish_uploads_command(store, &["ab", "cd"], "n1-1"),
            make_tree_command(store, &m, "n1-1"),
        ];
        for pm in [PackageManager::AptGet, PackageManager::Dnf] {
            for java in [true, false] {
                let cmd = install_command(pm, java, &["iptables", "openssh-client"]);
                commands.push(node("bob").sudo(&cmd));
                commands.push(cmd);
            }
        }
        for user in ["root", "bob"] {
            let n = node(user);
            commands.push(probe_command(&n, "/usr/lib/jvm/x y/bin/java", store));
            commands.push(ssh::make_dir_command(&n, store, ARTIFACTS_MARKER));
            commands.push(ssh::cleanup_command(&n, &[]));
        }
        for cmd in commands {
            let (status, _, err) = sh(&format!("sh -n -c {}", shell_quote(&cmd)));
            assert_eq!(status, 0, "{cmd}\n{err}");
        }
    }

    #[test]
    fn the_manifest_hashes_once_and_names_the_tree_by_content() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        fake_cache(&cache);
        let hashes = tmp.path().join("hashes.json");
        let m = manifest(&cache, Some(&hashes)).unwrap();
        assert_eq!(m.jars.len(), 4);
        assert_eq!(m.blobs().len(), 3, "the shared jar is one blob");
        assert_eq!(m.bytes(), 2 + 5 + 5 + 5);
        let netty = m
            .jars
            .iter()
            .find(|j| j.rel == "kafka/lib/netty.jar")
            .unwrap();
        // sha256("netty"), as `printf netty | sha256sum` prints it.
        assert_eq!(
            netty.sha256,
            sh("printf netty | sha256sum | cut -c1-64").1.trim()
        );
        // The hash cache is used: a file changed without changing its size
        // or modification time keeps its cached hash.
        let path = cache.join("zookeeper/lib/zookeeper-3.8.4.jar");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "ZK").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let again = manifest(&cache, Some(&hashes)).unwrap();
        assert_eq!(
            again, m,
            "hashed again although size and mtime are the same"
        );
        // Without the cache the change is seen, and the tree changes with it.
        let fresh = manifest(&cache, None).unwrap();
        assert_ne!(fresh.tree, m.tree);
        assert_eq!(fresh.tree.len(), 16);
    }

    /// The upload's last steps run for real in a temporary store: good
    /// temporary blobs are renamed to their hash, a corrupted one is
    /// removed and fails the command, and the tree links resolve to the
    /// jars' contents.
    #[test]
    fn uploads_are_checked_before_rename_and_the_tree_links_the_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        fake_cache(&cache);
        let m = manifest(&cache, None).unwrap();
        let store = tmp.path().join("store");
        std::fs::create_dir_all(store.join("blobs")).unwrap();
        let shas: Vec<&str> = m.blobs().keys().copied().collect();
        for (sha, jar) in m.blobs() {
            std::fs::copy(&jar.path, store.join(format!("blobs/.tmp.{sha}.n1-7"))).unwrap();
        }
        let (status, _, err) = sh(&finish_uploads_command(&store, &shas, "n1-7"));
        assert_eq!(status, 0, "{err}");
        for sha in &shas {
            assert!(store.join("blobs").join(sha).is_file());
        }
        // A corrupted upload: removed, never renamed.
        let bad = shas[0];
        std::fs::remove_file(store.join("blobs").join(bad)).unwrap();
        std::fs::write(store.join(format!("blobs/.tmp.{bad}.n1-8")), b"garbage").unwrap();
        let (status, _, err) = sh(&finish_uploads_command(&store, &[bad], "n1-8"));
        assert_ne!(status, 0);
        assert!(err.contains("corrupted"), "{err}");
        assert!(!store.join("blobs").join(bad).exists());
        assert!(!store.join(format!("blobs/.tmp.{bad}.n1-8")).exists());
        // A tree with a missing blob is refused (dangling link) ...
        let (status, _, _) = sh(&make_tree_command(&store, &m, "n1-7"));
        assert_ne!(status, 0, "a tree with a missing blob passed");
        // ... and complete once the blob is there.
        let jar = m.blobs()[bad].path.clone();
        std::fs::copy(jar, store.join("blobs").join(bad)).unwrap();
        std::fs::remove_dir_all(tree_dir(&store, &m.tree)).unwrap();
        let (status, _, err) = sh(&make_tree_command(&store, &m, "n1-7"));
        assert_eq!(status, 0, "{err}");
        let root = tree_dir(&store, &m.tree);
        assert_eq!(
            std::fs::read(root.join("kafka/lib/netty.jar")).unwrap(),
            b"netty"
        );
        assert_eq!(
            std::fs::read(root.join("zookeeper/lib/zookeeper-3.8.4.jar")).unwrap(),
            b"zk"
        );
        Artifacts::at(&root).check().unwrap();
        // Made again: a no-op that still succeeds.
        let (status, _, err) = sh(&make_tree_command(&store, &m, "n1-9"));
        assert_eq!(status, 0, "{err}");
        assert_eq!(std::fs::read_dir(store.join("trees")).unwrap().count(), 1);
    }
}
