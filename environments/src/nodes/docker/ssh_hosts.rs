//! Plain SSH hosts in containers, for end-to-end tests of `env.kind = "ssh"`
//! as a user with a fleet of fresh VMs would run it: containers of a bare
//! Debian image (`environments/docker/ssh-host`: stock sshd, sudo, no Java,
//! no iptables, no artifact mount), one of them logged into as a non-root
//! user with passwordless sudo, listed in a hosts TOML file
//! ([`crate::nodes::ssh`]'s format).
//!
//! The private Docker engine gives containers no route out (`--ip-masq=false`:
//! nodes talk only to each other and to this machine), so packages come
//! through an [`AptProxy`] on this machine, bound to the network's gateway
//! address, as an air-gapped fleet gets them from a local mirror or proxy.
//!
//! Everything is labelled with the fixture's name (`td-<test>-<pid>-<n>`),
//! removed in `Drop` (panics included), and reaped by the next
//! [`super::DockerTestEnv::up`] or [`SshHosts::up`] if the test process was
//! killed; the proxy dies with the test thread that started it.

use super::engine::EngineLease;
use super::image::{ensure_image, LOCAL_BASE_IMAGE};
use super::{
    await_node, create_network, ensure_key_pair, parallel, remove_resources, start_container,
    ContainerSpec, DockerCli, DockerNode, DockerRecord,
};
use crate::nodes::EnvError;
use splitbrain_core::control::Node;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Repository of the plain SSH host image; the tag is the build's hash.
pub const SSH_HOST_IMAGE_REPO: &str = "splitbrain/ssh-host";

/// The SSH host image's build files (name in the build context, contents).
pub const SSH_HOST_BUILD_FILES: [(&str, &str); 2] = [
    (
        "Dockerfile",
        include_str!("../../../docker/ssh-host/Dockerfile"),
    ),
    (
        "ssh-host-init",
        include_str!("../../../docker/ssh-host/ssh-host-init"),
    ),
];

const QUICK: Duration = Duration::from_secs(30);

/// Builds the SSH host image on `base` unless cached; returns its name.
pub fn ensure_ssh_host_image(cli: &DockerCli, base: &str) -> Result<String, EnvError> {
    ensure_image(
        cli,
        base,
        SSH_HOST_IMAGE_REPO,
        &SSH_HOST_BUILD_FILES,
        "ssh-host-image",
    )
}

/// The base image the fixtures use: `$SPLITBRAIN_DOCKER_BASE`, else the
/// locally made [`LOCAL_BASE_IMAGE`] (the node image's base here).
pub fn test_base_image() -> String {
    std::env::var("SPLITBRAIN_DOCKER_BASE")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| LOCAL_BASE_IMAGE.to_string())
}

/// A private apt-cacher-ng (Debian's package) on this machine: its own
/// config, cache and logs in a temporary directory, listening on one
/// address. Stopped on drop; it also dies with the thread that started it.
#[derive(Debug)]
pub struct AptProxy {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

/// Where Debian installs apt-cacher-ng's daemon.
const APT_CACHER_NG: &str = "/usr/sbin/apt-cacher-ng";

impl AptProxy {
    /// Starts a proxy listening on `bind` (a free port), installing Debian's
    /// `apt-cacher-ng` first if missing (its system service is not needed:
    /// this one runs on its own).
    pub fn start(bind: Ipv4Addr) -> Result<AptProxy, EnvError> {
        install_apt_cacher_ng()?;
        // apt-cacher-ng 3.7 fails to bind ports above 32767 ("Error
        // resolving address for binding"): its usual port, or the next free.
        let port = (3142..3400)
            .find(|&p| TcpListener::bind((bind, p)).is_ok())
            .ok_or_else(|| {
                EnvError::BadInput(format!(
                    "no free port in 3142..3400 on {bind} for the apt proxy"
                ))
            })?;
        let dir = tempfile::Builder::new()
            .prefix("splitbrain-apt-proxy.")
            .tempdir()
            .map_err(|source| EnvError::Io {
                what: "create the apt proxy's directory".into(),
                source,
            })?;
        for sub in ["conf", "cache", "log", "run"] {
            std::fs::create_dir_all(dir.path().join(sub)).map_err(|source| EnvError::Io {
                what: format!("create {}/{sub}", dir.path().display()),
                source,
            })?;
        }
        // No Remap lines: Debian's stock config maps deb.debian.org to a
        // mirror list (ftp.debian.org …) that a machine with its own mirror
        // or restricted DNS may not resolve (every request then gets "503
        // Host not found"); without them it caches exactly what is asked.
        let conf = format!(
            "CacheDir: {cache}\nLogDir: {log}\nPort: {port}\nBindAddress: {bind}\n\
             ConnectProto: v4\nExThreshold: 4\n",
            cache = dir.path().join("cache").display(),
            log = dir.path().join("log").display(),
        );
        let conf_file = dir.path().join("conf/acng.conf");
        std::fs::write(&conf_file, conf).map_err(|source| EnvError::Io {
            what: format!("write {}", conf_file.display()),
            source,
        })?;
        let run = dir.path().join("run");
        let mut cmd = Command::new(APT_CACHER_NG);
        cmd.arg("-c")
            .arg(dir.path().join("conf"))
            .arg("ForeGround=1")
            .arg(format!("SocketPath={}", run.join("socket").display()))
            .arg(format!("PidFile={}", run.join("pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl in the child before exec; no allocation, no locks.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| EnvError::Io {
            what: format!("start {APT_CACHER_NG}"),
            source,
        })?;
        let mut proxy = AptProxy {
            child,
            url: format!("http://{bind}:{port}"),
            dir,
        };
        let deadline = Instant::now() + QUICK;
        while TcpStream::connect((bind, port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(EnvError::BadInput(format!(
                    "apt-cacher-ng exited at start ({status}); see {}",
                    proxy.dir.path().join("log").display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(EnvError::BadInput(format!(
                    "apt-cacher-ng does not listen on {bind}:{port} after {QUICK:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(proxy)
    }

    /// `http://address:port`, for `Acquire::http::Proxy`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
}

impl Drop for AptProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs Debian's apt-cacher-ng if its daemon is missing.
fn install_apt_cacher_ng() -> Result<(), EnvError> {
    // Tests in one binary start proxies at once: one installs, the others
    // wait here (and dpkg's lock covers other processes).
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(APT_CACHER_NG).exists() {
        return Ok(());
    }
    let out = super::cli::run_bounded(
        "sh",
        &[
            "-c",
            // The package's own system service is not needed (each test
            // runs a private instance): stopped and disabled again.
            "apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive \
             apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends apt-cacher-ng && \
             { systemctl disable --now apt-cacher-ng 2>/dev/null || \
               service apt-cacher-ng stop 2>/dev/null || true; }",
        ],
        &[],
        None,
        Duration::from_secs(600),
    )?;
    if out.status != 0 {
        return Err(EnvError::Command {
            command: "apt-get install apt-cacher-ng".into(),
            status: out.status,
            stderr: format!(
                "{} (install it by hand: sudo apt-get install apt-cacher-ng)",
                out.stderr.trim()
            ),
        });
    }
    Ok(())
}

/// One plain SSH host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshHost {
    /// Its name in the hosts file and hostname (`h1` …).
    pub name: String,
    /// Its container.
    pub container: String,
    /// Its address on the fixture's network; sshd on port 22.
    pub address: IpAddr,
    /// The user the hosts file logs in as (`root`, or the sudo user).
    pub user: String,
}

/// How [`SshHosts::up`] makes its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshHostsOptions {
    /// How many hosts.
    pub hosts: usize,
    /// Hosts (1-based) logged into as [`Self::sudo_user`] instead of root.
    pub sudo_hosts: Vec<usize>,
    /// The non-root user with passwordless sudo (created on every host).
    pub sudo_user: String,
    /// Start an [`AptProxy`] and point every host's apt at it.
    pub apt_proxy: bool,
}

impl Default for SshHostsOptions {
    fn default() -> Self {
        SshHostsOptions {
            hosts: 3,
            sudo_hosts: vec![1],
            sudo_user: "deploy".into(),
            apt_proxy: true,
        }
    }
}

/// Running plain SSH hosts and their hosts file, owned by one test.
#[derive(Debug)]
pub struct SshHosts {
    name: String,
    cli: DockerCli,
    hosts: Vec<SshHost>,
    dir: tempfile::TempDir,
    hosts_file: PathBuf,
    proxy: Option<AptProxy>,
    // Dropped after the containers are gone (see Drop).
    lease: Option<EngineLease>,
}

impl SshHosts {
    /// Builds the image if need be, starts the proxy (if asked) and the
    /// hosts, waits for every sshd, and writes the hosts file. On failure
    /// what was made is removed again.
    pub fn up(
        lease: EngineLease,
        test_name: &str,
        opts: &SshHostsOptions,
    ) -> Result<SshHosts, EnvError> {
        super::test_env::reap_orphaned_test_envs(lease.cli());
        if opts.hosts == 0 || opts.hosts > super::DockerSubnet::MAX_NODES {
            return Err(EnvError::BadInput(format!(
                "{} hosts: 1 to {}",
                opts.hosts,
                super::DockerSubnet::MAX_NODES
            )));
        }
        let image = ensure_ssh_host_image(lease.cli(), &test_base_image())?;
        let name = crate::nodes::test_names::unique_name("td", test_name);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempdir()
            .map_err(|source| EnvError::Io {
                what: "create the hosts' directory".into(),
                source,
            })?;
        let mut fixture = SshHosts {
            hosts_file: dir.path().join("hosts.toml"),
            name,
            cli: lease.cli().clone(),
            hosts: Vec::new(),
            dir,
            proxy: None,
            lease: Some(lease),
        };
        // From here on Drop removes whatever was made.
        fixture.build(&image, opts)?;
        Ok(fixture)
    }

    fn build(&mut self, image: &str, opts: &SshHostsOptions) -> Result<(), EnvError> {
        let mut record = DockerRecord {
            env: self.name.clone(),
            docker_host: self.cli.host.clone(),
            network: self.name.clone(),
            subnet: None,
            image: image.to_string(),
            nodes: Vec::new(),
            artifacts: None,
        };
        let subnet = create_network(&self.cli, &record, None)?;
        record.subnet = Some(subnet.to_string());
        if opts.apt_proxy {
            self.proxy = Some(AptProxy::start(subnet.gateway())?);
        }
        let public_key = ensure_key_pair(self.dir.path(), &self.name)?;
        self.hosts = (1..=opts.hosts)
            .map(|k| {
                let address = subnet.node_address(k).map(IpAddr::V4).ok_or_else(|| {
                    EnvError::BadInput(format!("no address for host {k} in {subnet}"))
                })?;
                Ok(SshHost {
                    name: format!("h{k}"),
                    container: format!("{}-h{k}", self.name),
                    address,
                    user: if opts.sudo_hosts.contains(&k) {
                        opts.sudo_user.clone()
                    } else {
                        "root".into()
                    },
                })
            })
            .collect::<Result<_, EnvError>>()?;
        let proxy_url = self.proxy.as_ref().map(|p| p.url().to_string());
        for result in parallel(&self.hosts, |host| {
            self.run_container(
                &record,
                host,
                &public_key,
                &opts.sudo_user,
                proxy_url.as_deref(),
            )
        }) {
            result?;
        }
        let mut known_hosts = String::new();
        for line in parallel(&self.hosts, |host| {
            await_node(
                &self.cli,
                &DockerNode {
                    name: host.name.clone(),
                    container: host.container.clone(),
                    address: host.address,
                },
            )
        }) {
            known_hosts.push_str(&line?);
            known_hosts.push('\n');
        }
        let known_hosts_path = self.dir.path().join("known_hosts");
        std::fs::write(&known_hosts_path, known_hosts).map_err(|source| EnvError::Io {
            what: format!("write {}", known_hosts_path.display()),
            source,
        })?;
        std::fs::write(&self.hosts_file, self.hosts_toml()).map_err(|source| EnvError::Io {
            what: format!("write {}", self.hosts_file.display()),
            source,
        })
    }

    fn run_container(
        &self,
        record: &DockerRecord,
        host: &SshHost,
        public_key: &str,
        sudo_user: &str,
        proxy: Option<&str>,
    ) -> Result<(), EnvError> {
        let mut env = vec![
            format!("SPLITBRAIN_AUTHORIZED_KEY={public_key}"),
            format!("SPLITBRAIN_SUDO_USER={sudo_user}"),
        ];
        env.extend(proxy.map(|p| format!("SPLITBRAIN_APT_PROXY={p}")));
        let peers: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| h.name != host.name)
            .map(|h| format!("{}:{}", h.name, h.address))
            .collect();
        let spec = ContainerSpec {
            record,
            node: &host.name,
            container: &host.container,
            address: host.address,
            peers,
            env,
            mounts: Vec::new(),
        };
        start_container(&self.cli, &spec)
    }

    /// The hosts file: one `[[nodes]]` per host (name, address, user, the
    /// fixture's key and known_hosts).
    pub fn hosts_toml(&self) -> String {
        let key = self.key_path();
        let known = self.known_hosts_path();
        self.hosts
            .iter()
            .map(|h| {
                format!(
                    "[[nodes]]\nname = \"{}\"\naddress = \"{}\"\nuser = \"{}\"\n\
                     key_path = \"{}\"\nknown_hosts = \"{}\"\n\n",
                    h.name,
                    h.address,
                    h.user,
                    key.display(),
                    known.display()
                )
            })
            .collect()
    }

    /// The fixture's name (the label on its containers and network).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hosts.
    pub fn hosts(&self) -> &[SshHost] {
        &self.hosts
    }

    /// The hosts file written by [`Self::up`].
    pub fn hosts_file(&self) -> &Path {
        &self.hosts_file
    }

    /// The private key every host accepts (for root and the sudo user).
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// The known_hosts file with every host's key.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The hosts as the control layer takes them, logged in as in the hosts
    /// file (`as_user`: `None`), or all as `as_user`.
    pub fn nodes(&self, as_user: Option<&str>) -> Vec<Node> {
        self.hosts
            .iter()
            .map(|h| Node {
                name: h.name.clone(),
                address: h.address,
                host: None,
                port: 22,
                user: as_user.unwrap_or(&h.user).to_string(),
                key_path: self.key_path(),
                known_hosts: self.known_hosts_path(),
                dir: PathBuf::from(crate::nodes::ssh::DEFAULT_NODE_DIR),
            })
            .collect()
    }

    /// The apt proxy, if started.
    pub fn apt_proxy(&self) -> Option<&AptProxy> {
        self.proxy.as_ref()
    }

    /// The engine the hosts live in.
    pub fn cli(&self) -> &DockerCli {
        &self.cli
    }

    /// Removes the containers and network now, reporting errors.
    pub fn down(mut self) -> Result<(), EnvError> {
        let result = remove_resources(&self.cli, &self.name);
        self.hosts.clear();
        result
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        if let Err(e) = remove_resources(&self.cli, &self.name) {
            eprintln!("SshHosts {}: teardown incomplete: {e}", self.name);
        }
        self.proxy.take();
        // Last: it may stop the engine it started.
        self.lease.take();
    }
}
