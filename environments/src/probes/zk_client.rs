//! Talking to ONE ZooKeeper server from the control node: four-letter words
//! (`srvr`, `conf`) and a minimal client session (connect, getData, create,
//! getChildren, close).
//!
//! Why hand-written rather than a client library: split-brain detection needs
//! what *that one server* serves, while library clients take a connect string
//! and move between servers on their own; they are also asynchronous and keep
//! sessions alive in the background. The handful of requests used here are a
//! few dozen lines of the (stable, documented) jute encoding, every call is
//! synchronous and bounded by one timeout.

use crate::probes::wire::{self, Decoder, Encoder, Malformed};
use crate::probes::ProbeError;
use splitbrain_core::cluster::ZkMode;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Names the ZooKeeper error codes a reader of a report may meet.
pub fn zk_error_name(code: i32) -> &'static str {
    match code {
        -4 => "connection loss",
        -7 => "operation timeout",
        -101 => "no node",
        -110 => "node exists",
        -112 => "session expired",
        -102 => "no auth",
        -108 => "not empty",
        _ => "see KeeperException.Code",
    }
}

/// ZooKeeper's "no node" error code.
pub const NO_NODE: i32 = -101;

/// Sends a four-letter word and returns the whole answer (the server closes
/// the connection after answering).
pub fn four_letter_word(
    addr: SocketAddr,
    word: &str,
    timeout: Duration,
) -> Result<String, ProbeError> {
    let io_err = |source| ProbeError::Io { addr, source };
    let mut stream = wire::connect(addr, timeout).map_err(io_err)?;
    stream.write_all(word.as_bytes()).map_err(io_err)?;
    let mut out = Vec::new();
    // `take` bounds the answer; `conf` and `srvr` are a few hundred bytes.
    (&mut stream)
        .take(1 << 20)
        .read_to_end(&mut out)
        .map_err(io_err)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// What `srvr` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srvr {
    /// `Mode:`; [`ZkMode::Looking`] when the server answers that it is not
    /// serving requests.
    pub mode: ZkMode,
    /// `Zxid:`.
    pub zxid: Option<u64>,
    /// `Node count:`.
    pub znode_count: Option<u64>,
}

/// Parses `srvr`'s answer.
pub fn parse_srvr(text: &str) -> Result<Srvr, Malformed> {
    if text.contains("not currently serving requests") {
        return Ok(Srvr {
            mode: ZkMode::Looking,
            zxid: None,
            znode_count: None,
        });
    }
    let mut mode = None;
    let mut zxid = None;
    let mut znode_count = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Mode:") {
            mode = Some(match v.trim() {
                "leader" => ZkMode::Leader,
                "follower" => ZkMode::Follower,
                "observer" => ZkMode::Observer,
                "standalone" => ZkMode::Standalone,
                "read-only" | "looking" => ZkMode::Looking,
                other => return Err(Malformed(format!("unknown srvr Mode '{other}'"))),
            });
        } else if let Some(v) = line.strip_prefix("Zxid:") {
            let v = v.trim();
            let hex = v.strip_prefix("0x").unwrap_or(v);
            zxid = Some(
                u64::from_str_radix(hex, 16)
                    .map_err(|e| Malformed(format!("srvr Zxid '{v}': {e}")))?,
            );
        } else if let Some(v) = line.strip_prefix("Node count:") {
            znode_count = Some(
                v.trim()
                    .parse()
                    .map_err(|e| Malformed(format!("srvr Node count '{}': {e}", v.trim())))?,
            );
        }
    }
    let mode = mode.ok_or_else(|| Malformed(format!("srvr answer has no Mode line: {text:?}")))?;
    Ok(Srvr {
        mode,
        zxid,
        znode_count,
    })
}

/// One line of `conf`'s membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfMember {
    /// `server.N`.
    pub id: u64,
    /// `participant` or `observer` (participant when unspecified).
    pub participant: bool,
    /// The rest of the line (addresses, ports).
    pub spec: String,
}

/// What `conf` says about the server and the membership it believes in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    /// `serverId=`.
    pub server_id: Option<u64>,
    /// Every `server.N=` line.
    pub members: Vec<ConfMember>,
    /// `version=` of the dynamic configuration, when shown.
    pub config_version: Option<String>,
}

impl Conf {
    /// Ids of the voting members (participants), sorted.
    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .members
            .iter()
            .filter(|m| m.participant)
            .map(|m| m.id)
            .collect();
        v.sort_unstable();
        v
    }
}

/// Parses `conf`'s answer.
pub fn parse_conf(text: &str) -> Result<Conf, Malformed> {
    let mut conf = Conf {
        server_id: None,
        members: Vec::new(),
        config_version: None,
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("serverId=") {
            conf.server_id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("version=") {
            conf.config_version = Some(v.to_string());
        } else if let Some(rest) = line.strip_prefix("server.") {
            let (id, spec) = rest
                .split_once('=')
                .ok_or_else(|| Malformed(format!("conf line '{line}' has no '='")))?;
            let id = id
                .parse()
                .map_err(|e| Malformed(format!("conf line '{line}': server id: {e}")))?;
            // host:quorum:election[:role][;client]; the role is the 4th field.
            let server_part = spec.split(';').next().unwrap_or("");
            let participant = !server_part.split(':').any(|f| f == "observer");
            conf.members.push(ConfMember {
                id,
                participant,
                spec: spec.to_string(),
            });
        }
    }
    if conf.server_id.is_none() && conf.members.is_empty() {
        return Err(Malformed(format!(
            "conf answer has no serverId nor server lines: {text:?}"
        )));
    }
    Ok(conf)
}

/// Operation codes of the requests this client sends.
mod op {
    pub const CREATE: i32 = 1;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const GET_CHILDREN: i32 = 8;
    pub const RECONFIG: i32 = 16;
    pub const CLOSE_SESSION: i32 = -11;
}

/// A client session with exactly one ZooKeeper server. It never moves to
/// another server: if that server fails, every call fails.
pub struct ZkSession {
    addr: SocketAddr,
    stream: TcpStream,
    xid: i32,
    session_id: i64,
}

impl ZkSession {
    /// Opens a new session (as a fresh client: last zxid seen 0) with a
    /// session timeout of `session_timeout`; every network step is bounded by
    /// `timeout`. A server that is not part of a serving quorum closes the
    /// connection, which reads as an error.
    pub fn connect(
        addr: SocketAddr,
        session_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, ProbeError> {
        let io_err = |source| ProbeError::Io { addr, source };
        let mut stream = wire::connect(addr, timeout).map_err(io_err)?;
        let req = Encoder::new()
            .i32(0) // protocolVersion
            .i64(0) // lastZxidSeen
            .i32(session_timeout.as_millis().min(i32::MAX as u128) as i32)
            .i64(0) // sessionId: new session
            .bytes32(&[0u8; 16]) // passwd
            .bool(false) // readOnly
            .finish();
        wire::write_frame(&mut stream, &req).map_err(io_err)?;
        let resp = wire::read_frame(&mut stream).map_err(io_err)?;
        let mal = |source| ProbeError::Malformed { addr, source };
        let mut d = Decoder::new(&resp);
        let _protocol = d.i32().map_err(mal)?;
        let negotiated = d.i32().map_err(mal)?;
        let session_id = d.i64().map_err(mal)?;
        if negotiated <= 0 {
            // The server's way of refusing a session (e.g. it has seen no quorum).
            return Err(ProbeError::Io {
                addr,
                source: io::Error::new(io::ErrorKind::ConnectionRefused, "session refused"),
            });
        }
        Ok(Self {
            addr,
            stream,
            xid: 0,
            session_id,
        })
    }

    /// The session id the server assigned.
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// Sends one request and returns the reply body after its header, or the
    /// server's error code.
    fn call(&mut self, opcode: i32, body: Encoder) -> Result<Result<Vec<u8>, i32>, ProbeError> {
        let addr = self.addr;
        let io_err = |source| ProbeError::Io { addr, source };
        let mal = |source| ProbeError::Malformed { addr, source };
        self.xid += 1;
        let xid = self.xid;
        let mut frame = Encoder::new().i32(xid).i32(opcode).finish();
        frame.extend_from_slice(&body.finish());
        wire::write_frame(&mut self.stream, &frame).map_err(io_err)?;
        // Replies come in order; skip anything that is not ours (e.g. a
        // watch notification, xid -1), a bounded number of times.
        for _ in 0..16 {
            let resp = wire::read_frame(&mut self.stream).map_err(io_err)?;
            let mut d = Decoder::new(&resp);
            let got_xid = d.i32().map_err(mal)?;
            let _zxid = d.i64().map_err(mal)?;
            let err = d.i32().map_err(mal)?;
            if got_xid != xid {
                continue;
            }
            if err != 0 {
                return Ok(Err(err));
            }
            return Ok(Ok(resp[16..].to_vec()));
        }
        Err(mal(Malformed(format!("no reply with xid {xid}"))))
    }

    fn server_err(&self, op: &'static str, path: &str, code: i32) -> ProbeError {
        ProbeError::ZkServer {
            addr: self.addr,
            op,
            path: path.to_string(),
            code,
        }
    }

    /// The data of `path`, `None` if it does not exist.
    pub fn get_data(&mut self, path: &str) -> Result<Option<Vec<u8>>, ProbeError> {
        let body = Encoder::new().bytes32(path.as_bytes()).bool(false);
        match self.call(op::GET_DATA, body)? {
            Ok(resp) => {
                let mut d = Decoder::new(&resp);
                let data = d.bytes32().map_err(|source| ProbeError::Malformed {
                    addr: self.addr,
                    source,
                })?;
                Ok(Some(data.unwrap_or_default().to_vec()))
            }
            Err(NO_NODE) => Ok(None),
            Err(code) => Err(self.server_err("getData", path, code)),
        }
    }

    /// Whether `path` exists.
    pub fn exists(&mut self, path: &str) -> Result<bool, ProbeError> {
        let body = Encoder::new().bytes32(path.as_bytes()).bool(false);
        match self.call(op::EXISTS, body)? {
            Ok(_) => Ok(true),
            Err(NO_NODE) => Ok(false),
            Err(code) => Err(self.server_err("exists", path, code)),
        }
    }

    /// The children of `path`, sorted; `None` if it does not exist.
    pub fn get_children(&mut self, path: &str) -> Result<Option<Vec<String>>, ProbeError> {
        let body = Encoder::new().bytes32(path.as_bytes()).bool(false);
        match self.call(op::GET_CHILDREN, body)? {
            Ok(resp) => {
                let addr = self.addr;
                let mal = |source| ProbeError::Malformed { addr, source };
                let mut d = Decoder::new(&resp);
                let n = d.array_len().map_err(mal)?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = d.bytes32().map_err(mal)?.unwrap_or_default();
                    out.push(String::from_utf8_lossy(name).into_owned());
                }
                out.sort();
                Ok(Some(out))
            }
            Err(NO_NODE) => Ok(None),
            Err(code) => Err(self.server_err("getChildren", path, code)),
        }
    }

    /// Creates a persistent znode open to everyone (world:anyone, all
    /// permissions); `Ok(false)` if it already existed.
    pub fn create(&mut self, path: &str, data: &[u8]) -> Result<bool, ProbeError> {
        let body = Encoder::new()
            .bytes32(path.as_bytes())
            .bytes32(data)
            .i32(1) // one ACL
            .i32(31) // perms: ALL
            .bytes32(b"world")
            .bytes32(b"anyone")
            .i32(0); // flags: persistent
        match self.call(op::CREATE, body)? {
            Ok(_) => Ok(true),
            Err(-110) => Ok(false),
            Err(code) => Err(self.server_err("create", path, code)),
        }
    }

    /// Dynamic reconfiguration (ZooKeeper's `reconfig`, incremental form):
    /// adds the `server.N=...` specs in `joining` (comma-separated) and
    /// removes the ids in `leaving` (comma-separated). Needs `reconfigEnabled`
    /// and the right to reconfigure (super user, or `zookeeper.skipACL`).
    /// Returns the new configuration as the server sends it.
    pub fn reconfig(
        &mut self,
        joining: Option<&str>,
        leaving: Option<&str>,
    ) -> Result<String, ProbeError> {
        let string = |e: Encoder, s: Option<&str>| match s {
            Some(s) => e.bytes32(s.as_bytes()),
            None => e.i32(-1),
        };
        let body = string(string(Encoder::new(), joining), leaving)
            .i32(-1) // newMembers: none (incremental)
            .i64(-1); // curConfigId: any
        match self.call(op::RECONFIG, body)? {
            Ok(resp) => {
                let mut d = Decoder::new(&resp);
                let data = d.bytes32().map_err(|source| ProbeError::Malformed {
                    addr: self.addr,
                    source,
                })?;
                Ok(String::from_utf8_lossy(data.unwrap_or_default()).into_owned())
            }
            Err(code) => Err(self.server_err("reconfig", "/zookeeper/config", code)),
        }
    }

    /// Closes the session politely (the server drops its ephemeral state at
    /// once instead of after the session timeout).
    pub fn close(mut self) -> Result<(), ProbeError> {
        self.call(op::CLOSE_SESSION, Encoder::new())?
            .map(|_| ())
            .map_err(|code| self.server_err("closeSession", "", code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    const SRVR_LEADER: &str = "Zookeeper version: 3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c, built on 2024-02-12 22:16 UTC\n\
Latency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\nConnections: 1\nOutstanding: 0\n\
Zxid: 0x300000012\nMode: leader\nNode count: 27\nProposal sizes last/min/max: -1/-1/-1\n";

    #[test]
    fn srvr_of_a_leader() {
        let s = parse_srvr(SRVR_LEADER).unwrap();
        assert_eq!(s.mode, ZkMode::Leader);
        assert_eq!(s.zxid, Some(0x3_0000_0012));
        assert_eq!(s.znode_count, Some(27));
    }

    #[test]
    fn srvr_of_a_server_without_quorum_is_looking() {
        let s = parse_srvr("This ZooKeeper instance is not currently serving requests\n").unwrap();
        assert_eq!(s.mode, ZkMode::Looking);
        assert_eq!(s.zxid, None);
    }

    #[test]
    fn srvr_garbage_is_an_error() {
        assert!(parse_srvr("").is_err());
        assert!(parse_srvr("Mode: emperor\n").is_err());
        assert!(parse_srvr("Zxid: 0xZZ\nMode: leader\n").is_err());
    }

    #[test]
    fn conf_membership_with_an_observer() {
        let text = "clientPort=2181\nsecureClientPort=-1\ndataDir=/x/version-2\nserverId=2\n\
initLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3888\nquorumPort=2888\npeerType=0\nmembership: \n\
server.1=10.88.3.2:2888:3888:participant;10.88.3.2:2181\n\
server.2=10.88.3.3:2888:3888:participant;10.88.3.3:2181\n\
server.4=10.88.3.5:2888:3888:observer;10.88.3.5:2181\n\
server.3=10.88.3.4:2888:3888;10.88.3.4:2181\nversion=0\n";
        let c = parse_conf(text).unwrap();
        assert_eq!(c.server_id, Some(2));
        assert_eq!(c.members.len(), 4);
        assert_eq!(c.voters(), vec![1, 2, 3]);
        assert_eq!(c.config_version.as_deref(), Some("0"));
    }

    #[test]
    fn conf_garbage_is_an_error() {
        assert!(parse_conf("hello\n").is_err());
        assert!(parse_conf("server.x=1:2:3\n").is_err());
    }

    /// A fake server that speaks just enough jute to check the client's
    /// encoding: it accepts one session, answers getData for `/controller`
    /// and "no node" for anything else.
    fn fake_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let req = wire::read_frame(&mut s).unwrap();
            let mut d = Decoder::new(&req);
            assert_eq!(d.i32().unwrap(), 0);
            assert_eq!(d.i64().unwrap(), 0);
            let timeout = d.i32().unwrap();
            assert_eq!(d.i64().unwrap(), 0);
            assert_eq!(d.bytes32().unwrap().unwrap().len(), 16);
            let resp = Encoder::new()
                .i32(0)
                .i32(timeout)
                .i64(0x1234)
                .bytes32(&[0; 16])
                .bool(false)
                .finish();
            wire::write_frame(&mut s, &resp).unwrap();
            while let Ok(req) = wire::read_frame(&mut s) {
                let mut d = Decoder::new(&req);
                let xid = d.i32().unwrap();
                let opcode = d.i32().unwrap();
                if opcode == op::CLOSE_SESSION {
                    let r = Encoder::new().i32(xid).i64(9).i32(0).finish();
                    wire::write_frame(&mut s, &r).unwrap();
                    break;
                }
                let path = String::from_utf8(d.bytes32().unwrap().unwrap().to_vec()).unwrap();
                // A watch event first, to check that the client skips it.
                let ev = Encoder::new().i32(-1).i64(-1).i32(0).finish();
                wire::write_frame(&mut s, &ev).unwrap();
                let r = if path == "/controller" {
                    let mut r = Encoder::new().i32(xid).i64(9).i32(0);
                    r = r.bytes32(br#"{"version":2,"brokerid":5,"timestamp":"1"}"#);
                    r.finish()
                } else {
                    Encoder::new().i32(xid).i64(9).i32(NO_NODE).finish()
                };
                wire::write_frame(&mut s, &r).unwrap();
            }
        });
        addr
    }

    #[test]
    fn session_reads_data_and_absence_from_one_server() {
        let addr = fake_server();
        let t = Duration::from_secs(2);
        let mut s = ZkSession::connect(addr, Duration::from_secs(4), t).unwrap();
        assert_eq!(s.session_id(), 0x1234);
        let data = s.get_data("/controller").unwrap().unwrap();
        assert!(String::from_utf8(data).unwrap().contains("\"brokerid\":5"));
        assert_eq!(s.get_data("/cluster/id").unwrap(), None);
        s.close().unwrap();
    }

    #[test]
    fn unreachable_server_fails_within_the_timeout() {
        // Port 1 on loopback: nothing listens, refused at once.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let start = std::time::Instant::now();
        assert!(four_letter_word(addr, "srvr", Duration::from_millis(200)).is_err());
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
