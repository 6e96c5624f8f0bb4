//! End-to-end test of the demo page with the full default model: serves the trunk build (`dist/`),
//! drives headless Chromium through ChromeDriver (WebDriver), waits for the worker to load
//! multilingual-e5-small, and checks the similarity the page computed in the browser against the
//! native CPU result for the same two texts.
//!
//! Needs `trunk build` output and ChromeDriver, so it is `#[ignore]`d in a plain `cargo test`;
//! `scripts/test.sh` builds the page and runs it with `--ignored`.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::backend::NdArray;
use mlr_embed::{Embedder, Role};
use serde_json::{json, Value};

fn env_path(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(default)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// A static file server for `root` on a free loopback port; one thread per connection.
fn serve(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &root);
            });
        }
    });
    port
}

fn handle(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/");
    let rel = if path == "/" { "index.html" } else { path.trim_start_matches('/') };
    let file = root.join(rel);
    if rel.split('/').any(|p| p == "..") || !file.is_file() {
        return stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    let mut f = std::fs::File::open(&file)?;
    let len = f.metadata()?.len();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        content_type(&file)
    )?;
    std::io::copy(&mut f, &mut stream)?;
    Ok(())
}

/// A minimal WebDriver client over HTTP/1.1 with `Connection: close`.
struct Driver {
    port: u16,
    session: String,
    child: Child,
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver is listening");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the headers, then exactly Content-Length bytes (ChromeDriver keeps connections open).
    let mut reader = BufReader::new(s);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("WebDriver answer is not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

impl Driver {
    fn start() -> Self {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {chromedriver}: {e} (scripts/setup.sh installs chromium-driver)"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = std::env::temp_dir().join(format!("mlr-e2e-profile-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-quic", "--window-size=1100,800",
            format!("--user-data-dir={}", profile.display()),
        ]}}}});
        let answer = http(port, "POST", "/session", Some(&caps));
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        Self { port, session, child }
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        http(self.port, method, &format!("/session/{}/{what}", self.session), body.as_ref())["value"].clone()
    }

    fn script(&self, js: &str) -> Value {
        self.cmd("POST", "execute/sync", Some(json!({"script": js, "args": []})))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.child.kill();
    }
}

#[test]
#[ignore = "needs the trunk build (dist/) and ChromeDriver: run by scripts/test.sh"]
fn demo_page_computes_similarity_in_the_browser() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let dist = env_path("MLR_DIST", || repo.join("dist"));
    assert!(dist.join("index.html").exists(), "{} has no index.html: run `trunk build`", dist.display());
    assert!(
        dist.join("models/multilingual-e5-small/model.safetensors").exists(),
        "the trunk build does not link the model (MLR_MODEL_DIR unset at build time?)"
    );
    let port = serve(dist.clone());
    let driver = Driver::start();
    driver.cmd("POST", "url", Some(json!({"url": format!("http://127.0.0.1:{port}/")})));

    let read = "return { status: document.querySelector('#status')?.textContent ?? null, \
                backend: document.querySelector('#backend')?.textContent ?? null, \
                value: document.querySelector('#similarity')?.dataset.value ?? null, \
                error: document.querySelector('#error')?.textContent ?? null };";
    let started = Instant::now();
    let state = loop {
        let state = driver.script(read);
        if let Some(error) = state["error"].as_str() {
            panic!("the page reports an error: {error}");
        }
        if state["value"].as_str().is_some_and(|v| !v.is_empty()) {
            break state;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "page not ready after 10 min: {state}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let browser: f32 = state["value"].as_str().unwrap().parse().unwrap();
    let backend = state["backend"].as_str().unwrap_or_default().to_string();

    // The same two texts natively.
    let model = env_path("MLR_MODEL_DIR", || dist.join("models/multilingual-e5-small"));
    let read_file = |n: &str| std::fs::read(model.join(n)).unwrap();
    let native = Embedder::<NdArray<f32>>::from_bytes(
        &read_file("config.json"),
        &read_file("tokenizer.json"),
        &read_file("model.safetensors"),
        &Default::default(),
    )
    .unwrap();
    let v = native.embed(&["¿Dónde está la biblioteca?", "Where is the library?"], Role::Query).unwrap();
    let expected = mlr_embed::cosine(&v[0], &v[1]);
    println!(
        "e2e: page ready in {:.1} s on backend {backend:?}; similarity in the browser {browser:.6}, native {expected:.6}",
        started.elapsed().as_secs_f64()
    );
    if let Some(png) = driver.cmd("GET", "screenshot", None).as_str() {
        use base64::Engine;
        let out = env_path("MLR_SCREENSHOT", || std::env::temp_dir().join("mlr-demo.png"));
        std::fs::write(&out, base64::engine::general_purpose::STANDARD.decode(png).unwrap()).unwrap();
        println!("e2e: screenshot written to {}", out.display());
    }
    assert!(backend.starts_with("CPU") || backend.starts_with("WebGPU"), "backend label {backend:?}");
    assert!((browser - expected).abs() < 1e-3, "browser {browser} vs native {expected}");
    assert!(browser > 0.8, "a Spanish question and its English translation are similar ({browser})");
}
