//! The images: a Debian bookworm base and splitbrain's node image built on it
//! from `environments/docker/Dockerfile` (compiled into the binary, so the
//! build works from any directory). Both are cached: the node image's tag is a
//! hash of its build files and base, so editing them rebuilds it and nothing
//! else does.

use super::cli::{run_bounded, DockerCli};
use super::engine::{run_dir, FileLock};
use crate::nodes::EnvError;
use std::time::Duration;

/// The default base: Debian's image from the user's registry.
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm";
/// A base made locally by `debootstrap` + `docker import`, for machines with
/// no registry (`environments/docker/base-image`).
pub const LOCAL_BASE_IMAGE: &str = "splitbrain/bookworm-base";
/// Repository of the node image; the tag is the build's content hash.
pub const NODE_IMAGE_REPO: &str = "splitbrain/node";

/// The node image's build files, as (name in the build context, contents).
pub const BUILD_FILES: [(&str, &str); 3] = [
    ("Dockerfile", include_str!("../../../docker/Dockerfile")),
    ("sshd_config", include_str!("../../../docker/sshd_config")),
    ("node-init", include_str!("../../../docker/node-init")),
];
const BASE_IMAGE_SCRIPT: &str = include_str!("../../../docker/base-image");

/// debootstrap downloads ~100 MB; the node build installs OpenJDK.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
const QUICK: Duration = Duration::from_secs(30);

/// FNV-1a, 64 bits: a stable content hash (std's hasher may change between
/// Rust releases, which would rebuild images for nothing).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The node image's full name for `base`, e.g. `splitbrain/node:3f…`.
pub fn node_image_name(base: &str) -> String {
    image_name(NODE_IMAGE_REPO, &BUILD_FILES, base)
}

/// `repo:<hash of the build files and base>`: a cached image's name, which
/// changes whenever what it is built from does.
pub fn image_name(repo: &str, files: &[(&str, &str)], base: &str) -> String {
    let mut parts: Vec<&str> = files.iter().map(|(_, text)| *text).collect();
    parts.push(base);
    format!("{repo}:{:016x}", fnv1a(&parts))
}

/// Whether the engine has an image of that name.
pub fn image_exists(cli: &DockerCli, name: &str) -> Result<bool, EnvError> {
    Ok(cli.run(&["image", "inspect", name], QUICK)?.status == 0)
}

/// Makes sure `base` is usable: the local base is made with debootstrap when
/// missing; any other is left to `docker build`, which pulls it.
pub fn ensure_base_image(cli: &DockerCli, base: &str) -> Result<(), EnvError> {
    if base != LOCAL_BASE_IMAGE || image_exists(cli, base)? {
        return Ok(());
    }
    let out = run_bounded(
        "bash",
        &[
            "-c",
            BASE_IMAGE_SCRIPT,
            "environments/docker/base-image",
            base,
        ],
        &[("DOCKER_HOST", &cli.host)],
        None,
        BUILD_TIMEOUT,
    )?;
    if out.status != 0 {
        return Err(EnvError::DockerImage {
            image: base.to_string(),
            detail: out.stderr.trim().to_string(),
        });
    }
    Ok(())
}

/// Builds the node image on `base` unless it is cached; returns its name.
pub fn ensure_node_image(cli: &DockerCli, base: &str) -> Result<String, EnvError> {
    ensure_image(cli, base, NODE_IMAGE_REPO, &BUILD_FILES, "node-image")
}

/// Builds the image `repo` from `files` (a Dockerfile taking `ARG BASE` and
/// what it copies) on `base` unless it is cached ([`image_name`]); labels it
/// `org.splitbrain.role=<role>`; returns its name. Made on one machine by
/// one build at a time; the others wait and find it cached.
pub fn ensure_image(
    cli: &DockerCli,
    base: &str,
    repo: &str,
    files: &[(&str, &str)],
    role: &str,
) -> Result<String, EnvError> {
    let name = image_name(repo, files, base);
    if image_exists(cli, &name)? {
        return Ok(name);
    }
    // Parallel tests would all build the same image: one builds, the others
    // wait and find it cached.
    let _lock = FileLock::exclusive(&run_dir().join("build.lock"))?;
    if image_exists(cli, &name)? {
        return Ok(name);
    }
    ensure_base_image(cli, base)?;
    let context = tempfile::Builder::new()
        .prefix("splitbrain-node-image.")
        .tempdir()
        .map_err(|source| EnvError::Io {
            what: "create a build context directory".into(),
            source,
        })?;
    for &(file, text) in files {
        let path = context.path().join(file);
        std::fs::write(&path, text).map_err(|source| EnvError::Io {
            what: format!("write {}", path.display()),
            source,
        })?;
    }
    let ctx = context.path().to_string_lossy().into_owned();
    let build_arg = format!("BASE={base}");
    let role_label = format!("org.splitbrain.role={role}");
    // --network host: apt-get inside the build reaches Debian's mirror without
    // the NAT rules our dockerd does not install. --force-rm: no intermediate
    // containers left behind when a step fails.
    let out = run_bounded(
        "docker",
        &[
            "build",
            "--network",
            "host",
            "--force-rm",
            "--build-arg",
            &build_arg,
            "--label",
            &role_label,
            "-t",
            &name,
            &ctx,
        ],
        &[("DOCKER_HOST", &cli.host), ("DOCKER_BUILDKIT", "0")],
        None,
        BUILD_TIMEOUT,
    )?;
    if out.status != 0 {
        let tail: Vec<&str> = out.stdout.lines().rev().take(15).collect();
        let mut detail: Vec<&str> = tail.into_iter().rev().collect();
        detail.push(out.stderr.trim());
        let mut detail = detail.join("\n");
        if base == DEFAULT_BASE_IMAGE {
            detail.push_str(&format!(
                "\nwithout a registry, use the local base: --docker-base {LOCAL_BASE_IMAGE} \
                 (made with debootstrap)"
            ));
        }
        return Err(EnvError::DockerImage {
            image: name,
            detail,
        });
    }
    Ok(name)
}

/// What a build may leave behind by mistake: containers that belong to no
/// environment (a build's intermediate containers) and dangling images.
/// Holds the build lock while looking, so a build in progress elsewhere on
/// this machine is not mistaken for residue. Empty when clean.
pub fn build_residue(cli: &DockerCli) -> Result<Vec<String>, EnvError> {
    let _lock = FileLock::exclusive(&run_dir().join("build.lock"))?;
    let format = format!("{{{{.Names}}}}\t{{{{.Label \"{}\"}}}}", super::ENV_LABEL);
    let containers = cli.ok(&["ps", "-a", "--format", &format], QUICK)?;
    let mut residue: Vec<String> = containers
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, env)| env.trim().is_empty())
        .map(|(name, _)| format!("container {name}"))
        .collect();
    let dangling = cli.ok(&["images", "-q", "--filter", "dangling=true"], QUICK)?;
    residue.extend(dangling.lines().map(|id| format!("dangling image {id}")));
    Ok(residue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_image_name_depends_on_base_and_is_stable() {
        let a = node_image_name(DEFAULT_BASE_IMAGE);
        assert_eq!(a, node_image_name(DEFAULT_BASE_IMAGE));
        assert_ne!(a, node_image_name(LOCAL_BASE_IMAGE));
        assert!(a.starts_with("splitbrain/node:"));
        assert_eq!(a.len(), "splitbrain/node:".len() + 16);
    }

    #[test]
    fn fnv1a_separates_parts() {
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn dockerfile_takes_base_as_argument() {
        let dockerfile = BUILD_FILES[0].1;
        assert!(dockerfile.contains("ARG BASE=debian:bookworm"));
        assert!(dockerfile.contains("FROM ${BASE}"));
    }
}
