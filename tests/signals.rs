//! Signals of an always-on `govflow run`, as a container runtime sends them:
//! SIGHUP rotates the BigCommerce token (read through `${file:...}`) without a
//! restart and refuses a broken configuration; SIGTERM commits the current
//! epoch and exits 0.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use common::*;

/// Tokens the proxy accepts; anything else is answered 401.
const TOKENS: [&str; 2] = ["tok-ONE-rotating", "tok-TWO-rotating"];

/// A proxy in front of the simulator that records each request's
/// `X-Auth-Token` and forwards it with the simulator's own token.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    sim_token: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let token = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    proxy.seen.lock().unwrap().push(token.clone());
    if !TOKENS.contains(&token.as_str()) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(Body::from("unknown token"))
            .unwrap();
    }
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let answer = proxy
        .http
        .get(format!("{}{path}", proxy.upstream))
        .header("X-Auth-Token", &proxy.sim_token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name.as_str().starts_with("x-") || name.as_str() == "content-type" {
            headers.insert(name.clone(), value.clone());
        }
    }
    let body = answer.bytes().await.unwrap();
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        response = response.header(name, value);
    }
    response.body(Body::from(body)).unwrap()
}

async fn start_proxy(upstream: String, sim_token: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream,
        sim_token,
        http: reqwest::Client::new(),
        seen: seen.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

fn write_config(
    dir: &Path,
    base_url: &str,
    store_hash: &str,
    token_file: &Path,
) -> std::path::PathBuf {
    let path = dir.join("govflow.toml");
    let text = format!(
        "[bigcommerce]\nbase_url = {base_url:?}\nstore_hash = {store_hash:?}\n\
         access_token = \"${{file:{}}}\"\npoll_interval = \"200ms\"\npage_size = 50\n\n\
         [warehouse]\nkind = \"local\"\ndir = {:?}\n\n[state]\ndir = {:?}\n\n\
         [status]\nlisten = \"127.0.0.1:0\"\n",
        token_file.display(),
        dir.join("warehouse").display().to_string(),
        dir.join("state").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits up to `secs` for `done`.
async fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_the_token_and_sigterm_commits_and_exits_zero() {
    let options = store(5, 60, 20, 80);
    let sim = start_sim(options.clone()).await;
    let (proxy, seen) = start_proxy(sim.base_url(), options.access_token.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bigcommerce-token");
    std::fs::write(&token_file, format!("{}\n", TOKENS[0])).unwrap();
    let config = write_config(dir.path(), &proxy, &options.store_hash, &token_file);
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args(["--log", "info", "run", "--no-schedule", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let state = dir.path().join("state");
    wait_for(120, "a first commit", || {
        govflow::runtime::checkpoint::Checkpoint::load(&state).is_ok_and(|c| c.epoch.is_some())
    })
    .await;
    assert!(seen.lock().unwrap().iter().all(|t| t == TOKENS[0]));
    // The container health check: `govflow status --health` on the status port.
    let stderr = std::fs::read_to_string(&log).unwrap();
    let status_url = stderr
        .lines()
        .find_map(|l| l.strip_prefix("status page: "))
        .expect("the status page's address")
        .trim()
        .to_string();
    assert!(!status_url.ends_with(":3000/"), "a free port: {status_url}");
    let probe = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_govflow"))
            .args([
                "status",
                "--health",
                "--config",
                "/nonexistent.toml",
                "--url",
                url,
            ])
            .output()
            .unwrap()
    };
    let healthy = probe(&status_url);
    assert!(healthy.status.success(), "{healthy:?}");
    let closed = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    assert!(!probe(&closed).status.success(), "nothing listens there");

    // Rotate: the file changes, SIGHUP, and the next requests carry the new token.
    std::fs::write(&token_file, format!("{}\n", TOKENS[1])).unwrap();
    signal(pid, "HUP");
    wait_for(30, "a request with the new token", || {
        seen.lock().unwrap().iter().any(|t| t == TOKENS[1])
    })
    .await;
    // Requests already under way may still carry the old token; later ones do not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    seen.lock().unwrap().clear();
    wait_for(30, "more polls", || seen.lock().unwrap().len() >= 5).await;
    assert!(
        seen.lock().unwrap().iter().all(|t| t == TOKENS[1]),
        "{:?}",
        seen.lock().unwrap()
    );

    // A broken file is refused; the pipeline goes on with what it has.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("page_size = 50", "page_size = \"fifty\""),
    )
    .unwrap();
    signal(pid, "HUP");
    wait_for(30, "the refusal in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("configuration refused"))
    })
    .await;
    seen.lock().unwrap().clear();
    wait_for(30, "polls after the refusal", || {
        seen.lock().unwrap().len() >= 3
    })
    .await;
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert!(seen.lock().unwrap().iter().all(|t| t == TOKENS[1]));

    // SIGTERM: the current epoch is committed, exit 0.
    let before = govflow::runtime::checkpoint::Checkpoint::load(&state)
        .unwrap()
        .epoch;
    signal(pid, "TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = child.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("committed through epoch"), "{stdout}");
    let after = govflow::runtime::checkpoint::Checkpoint::load(&state)
        .unwrap()
        .epoch;
    assert!(after >= before, "{before:?} -> {after:?}");

    // The log names what changed and what was refused, never a value.
    assert!(
        stderr.contains("secrets replaced") && stderr.contains("bigcommerce.access_token"),
        "{stderr}"
    );
    assert!(stderr.contains("bigcommerce.page_size"), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(!TOKENS.iter().any(|t| stderr.contains(t)), "{stderr}");
    // stderr is a file, not a terminal: no ANSI colour codes (`--color auto`).
    assert!(!stderr.contains('\x1b'), "{stderr}");
    sim.shutdown().await;
}

#[test]
fn the_simulator_stops_on_sigterm() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args([
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--customers",
            "10",
            "--orders",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(
        first.contains("BigCommerce simulator on http://127.0.0.1:"),
        "{first}"
    );
    signal(child.id(), "TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
