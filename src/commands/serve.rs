//! `splitbrain serve [STORE]`: serves the store on 127.0.0.1 — an index of
//! runs with their verdicts, linking to each report.
//!
//! Plain `std::net::TcpListener`, one request at a time: the pages are
//! static files and one generated index, for one local reader, so a
//! dependency (tiny_http, hyper) would buy nothing but build time.

use crate::exit::Exit;
use anyhow::Context;
use splitbrain_runner::report::escape;
use splitbrain_runner::store;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Serve the store's reports on localhost (127.0.0.1 only).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The store directory.
    #[arg(default_value = store::DEFAULT_STORE)]
    pub store: PathBuf,
    /// TCP port on 127.0.0.1 (0: any free port, printed at start).
    #[arg(long, default_value_t = 8088)]
    pub port: u16,
    /// Stop after this many requests (for tests); serve until Ctrl-C when
    /// absent.
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
}

/// Runs the server.
pub fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    store::list_runs(&args.store)?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)).with_context(|| {
        format!(
            "cannot listen on 127.0.0.1:{}; pick another --port",
            args.port
        )
    })?;
    let addr = listener.local_addr()?;
    println!("serving {} on http://{addr}/", args.store.display());
    let _ = std::io::stdout().flush();
    for (served, stream) in (1u64..).zip(listener.incoming()) {
        if let Ok(stream) = stream {
            if let Err(e) = handle(&args.store, stream) {
                eprintln!("serve: {e:#}");
            }
        }
        if args.max_requests.is_some_and(|m| served >= m) {
            break;
        }
    }
    Ok(Exit::Success)
}

fn handle(root: &Path, mut stream: TcpStream) -> anyhow::Result<()> {
    // A slow or silent client must not hold the server forever.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain headers (bounded).
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            405,
            "text/plain",
            b"only GET\n",
            method == "HEAD",
        );
    }
    let path = target.split('?').next().unwrap_or("/");
    let path = percent_decode(path);
    if path == "/" {
        let page = index(root)?;
        return respond(
            &mut stream,
            200,
            "text/html; charset=utf-8",
            page.as_bytes(),
            method == "HEAD",
        );
    }
    match safe_join(root, &path) {
        Some(file) if file.is_file() => {
            let body = std::fs::read(&file)?;
            respond(
                &mut stream,
                200,
                content_type(&file),
                &body,
                method == "HEAD",
            )
        }
        Some(dir) if dir.is_dir() => {
            let report = dir.join(splitbrain_runner::report::REPORT_FILE);
            if report.is_file() {
                let body = std::fs::read(report)?;
                respond(
                    &mut stream,
                    200,
                    "text/html; charset=utf-8",
                    &body,
                    method == "HEAD",
                )
            } else {
                respond(
                    &mut stream,
                    404,
                    "text/plain",
                    b"no report.html here\n",
                    method == "HEAD",
                )
            }
        }
        _ => respond(
            &mut stream,
            404,
            "text/plain",
            b"not found\n",
            method == "HEAD",
        ),
    }
}

/// `root` joined with a URL path, or `None` when the path tries to leave
/// the store (`..`, absolute components).
fn safe_join(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = Path::new(url_path.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> anyhow::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()?;
    Ok(())
}

/// The index page: every run with its verdict.
fn index(root: &Path) -> anyhow::Result<String> {
    let runs = store::list_runs(root)?;
    let mut rows = String::new();
    for r in &runs {
        let (verdict, class) = match &r.results {
            Some(res) => {
                let passed = res["passed"].as_bool().unwrap_or(res["valid"] == true);
                let what = res["outcome"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| {
                        if res["valid"] == true {
                            "valid".into()
                        } else {
                            "invalid".into()
                        }
                    });
                (what, if passed { "pass" } else { "fail" })
            }
            None => ("no results (run in progress or failed)".into(), "none"),
        };
        let link = if r.has_report {
            format!(
                "<a href=\"/{}/{}/report.html\">report</a>",
                escape(&r.test),
                escape(&r.run)
            )
        } else {
            String::new()
        };
        let related = related_runs(&root.join(&r.test).join(&r.run));
        rows.push_str(&format!(
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{link}</td><td>{related}</td></tr>\n",
            escape(&r.test),
            escape(&r.run),
            escape(&verdict)
        ));
    }
    Ok(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>splitbrain store</title><style>body{{font-family:sans-serif;margin:20px}}td,th{{border:1px solid #ddd;padding:4px 8px}}table{{border-collapse:collapse}}tr.pass td{{background:#e6f4ea}}tr.fail td{{background:#fdecea}}</style></head><body><h1>splitbrain runs in {}</h1><table><tr><th>test</th><th>run</th><th>verdict</th><th></th><th>related runs</th></tr>\n{rows}</table></body></html>\n",
        escape(&root.display().to_string())
    ))
}

/// A run's links (replay of, shrunk from / to, shrink candidate of) as
/// links to the other runs' reports ("" when it has none).
fn related_runs(dir: &Path) -> String {
    let links = splitbrain_runner::replay::read_links(dir);
    let Some(map) = links.as_object() else {
        return String::new();
    };
    map.iter()
        .filter_map(|(key, link)| {
            let run = link.get("run").and_then(|r| r.as_str())?;
            Some(format!(
                "{}: <a href=\"/{}/report.html\">{}</a>",
                escape(key),
                escape(run),
                escape(run)
            ))
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_store() {
        let root = Path::new("/s");
        assert_eq!(
            safe_join(root, "/a/b/report.html"),
            Some(PathBuf::from("/s/a/b/report.html"))
        );
        assert_eq!(safe_join(root, "/a/../../etc/passwd"), None);
        assert_eq!(percent_decode("/a%20b/%2e%2e"), "/a b/..");
        assert_eq!(safe_join(root, &percent_decode("/%2e%2e/x")), None);
    }

    #[test]
    fn the_index_links_a_run_to_its_shrink_and_back() {
        let root = tempfile::tempdir().unwrap();
        let a = store::create_run_dir(root.path(), "kills").unwrap();
        let b = store::create_run_dir(root.path(), "kills-shrink").unwrap();
        let name = |d: &Path| splitbrain_runner::replay::store_name(d);
        splitbrain_runner::replay::add_link(&a, "shrunk-to", serde_json::json!({"run": name(&b)}))
            .unwrap();
        splitbrain_runner::replay::add_link(
            &b,
            "shrunk-from",
            serde_json::json!({"run": name(&a)}),
        )
        .unwrap();
        let page = index(root.path()).unwrap();
        assert!(
            page.contains(&format!("shrunk-to: <a href=\"/{}/report.html\"", name(&b))),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                "shrunk-from: <a href=\"/{}/report.html\"",
                name(&a)
            )),
            "{page}"
        );
        // A run without links has an empty cell.
        assert!(related_runs(&root.path().join("nothing")).is_empty());
    }
}
