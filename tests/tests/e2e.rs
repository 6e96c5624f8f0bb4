//! End-to-end test of the demo page with the full default model: serves the trunk build (`dist/`,
//! which links the output of `mlr demo build`) under the page's Content-Security-Policy and
//! cross-origin isolation (Trunk.toml's `[serve]` headers, as `trunk serve` sends them), drives
//! headless Chromium through ChromeDriver (WebDriver) and checks, on the wasm CPU backend on every
//! core (the threaded worker; the page must report one thread per core):
//! a typed mixed-language query ranks the corpus as `mlr search` does natively; the
//! language-bias view shows the same ranks; the browser evaluator gives `mlr eval --vectors`'s
//! numbers on the same subset; the in-browser encoder reproduces the precomputed vectors; a reload
//! comes from the Cache API. Then the same page on WebGPU (the software adapter, one short query)
//! ranks like native. Last, the page as a static host serves it (no header, trunk's nonce
//! placeholder left in): the meta policy that scripts/csp_meta.py put into dist/index.html alone,
//! and no isolation, so one thread with a notice saying why; the same sentences are re-embedded
//! there, which gives the threads' speed-up, and a search ranks as `mlr search` does.
//!
//! Content-Security-Policy violations, on the page and in the encoder worker, are collected from
//! before the page's first script on (a `securitypolicyviolation` listener installed through the
//! DevTools protocol) and must be none after every step; a deliberate violation on the page and in
//! the worker shows that the listeners hear them and which policies are in force.
//!
//! Needs `trunk build` output, the `mlr` binary and ChromeDriver, so it is `#[ignore]`d in a plain
//! `cargo test`; `scripts/test.sh` builds the page and runs it with `--ignored`.
#![cfg(not(target_arch = "wasm32"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The directives of the page's Content-Security-Policy, read from Trunk.toml's `[serve] csp` (what
/// `trunk serve` sends), with `{{NONCE}}` left in.
fn csp_directives(repo: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(repo.join("Trunk.toml")).unwrap();
    let config: toml::Value = text.parse().unwrap();
    let parts = config["serve"]["csp"].as_array().expect("Trunk.toml has [serve] csp");
    parts.iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

/// dist/index.html carries the policy as a meta tag (scripts/csp_meta.py, a trunk post_build hook),
/// so that a static host keeps it: before any script, link or style, with Trunk.toml's directives
/// except `frame-ancestors` (ignored in a meta policy), and a `'sha256-…'` hash per inline script in
/// place of the nonce. That the hashes are right, the browser checks below (the loader runs, no
/// violation, also with the meta policy alone). Returns the number of hashes.
fn check_meta_csp(html: &str, directives: &[String]) -> usize {
    let tag = "<meta http-equiv=\"Content-Security-Policy\" content=\"";
    let at =
        html.find(tag).expect("dist/index.html has no Content-Security-Policy meta tag: did scripts/csp_meta.py run?");
    let content = &html[at + tag.len()..];
    let content = &content[..content.find('"').unwrap()];
    for first in ["<script", "<link", "<style"] {
        assert!(
            html.find(first).is_none_or(|p| p > at),
            "the meta policy comes before every {first} (it governs only what follows it)"
        );
    }
    let inline_scripts = html.split("<script").skip(1).filter(|s| !s[..s.find('>').unwrap()].contains(" src=")).count();
    let meta: Vec<Vec<&str>> = content.split(';').map(|d| d.split_whitespace().collect()).collect();
    let mut expected = Vec::new();
    for d in directives {
        let tokens: Vec<&str> = d.split_whitespace().collect();
        if tokens[0] == "frame-ancestors" {
            continue;
        }
        expected.push(tokens);
    }
    assert_eq!(meta.len(), expected.len(), "the meta policy {content:?} vs Trunk.toml's directives {directives:?}");
    let mut hashes = 0;
    for (m, t) in meta.iter().zip(&expected) {
        let kept: Vec<&str> = m.iter().copied().filter(|s| !s.starts_with("'sha256-")).collect();
        let wanted: Vec<&str> = t.iter().copied().filter(|s| *s != "'nonce-{{NONCE}}'").collect();
        assert_eq!(kept, wanted, "meta directive {m:?} vs Trunk.toml's {t:?}");
        let n = m.len() - kept.len();
        if t.contains(&"'nonce-{{NONCE}}'") && t[0] == "script-src" {
            assert_eq!(n, inline_scripts, "a hash per inline script in {m:?}");
            assert!(m.iter().filter(|s| s.starts_with("'sha256-")).all(|s| s.len() == 53), "sha256 hashes: {m:?}");
            hashes += n;
        } else {
            assert_eq!(n, 0, "no hashes in {m:?}");
        }
    }
    assert!(hashes > 0, "trunk's loader is an inline script: its hash is in the meta policy");
    hashes
}

/// The headers of Trunk.toml's `[serve] headers` (cross-origin isolation), as `trunk serve` sends
/// them on every response: "Name: value\r\n" lines.
fn serve_headers(repo: &Path) -> String {
    let text = std::fs::read_to_string(repo.join("Trunk.toml")).unwrap();
    let config: toml::Value = text.parse().unwrap();
    let headers = config["serve"]["headers"].as_table().expect("Trunk.toml has [serve] headers");
    assert!(headers.contains_key("Cross-Origin-Embedder-Policy"), "Trunk.toml's headers isolate the page: {headers:?}");
    headers.iter().map(|(k, v)| format!("{k}: {}\r\n", v.as_str().unwrap())).collect()
}

/// A static file server for `root` on a free loopback port; one thread per connection. As `trunk
/// serve` does, every response carries `headers` (cross-origin isolation) and HTML the page's CSP
/// header with a fresh nonce put in place of trunk's placeholder. While `plain` is set, files go out
/// as they are in dist/, as a static host serves them (no headers, the placeholder left in).
fn serve(root: PathBuf, csp: String, headers: String, plain: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let root = root.clone();
            let served = (!plain.load(Ordering::SeqCst)).then(|| (csp.clone(), headers.clone()));
            std::thread::spawn(move || {
                let (csp, headers) = served.as_ref().map_or((None, ""), |(c, h)| (Some(c.as_str()), h.as_str()));
                let _ = handle(stream, &root, csp, headers, n);
            });
        }
    });
    port
}

fn handle(mut stream: TcpStream, root: &Path, csp: Option<&str>, headers: &str, n: usize) -> std::io::Result<()> {
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
    if let Some(csp) = csp.filter(|_| rel.ends_with(".html")) {
        let nonce = format!("e2e{n}x{}", std::process::id());
        let body = std::fs::read_to_string(&file)?.replace("{{__TRUNK NONCE__}}", &nonce);
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Security-Policy: {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            csp.replace("{{NONCE}}", &nonce),
            body.len()
        )?;
        return stream.write_all(body.as_bytes());
    }
    let mut f = std::fs::File::open(&file)?;
    let len = f.metadata()?.len();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n",
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
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("WebDriver answer is not JSON ({e}): {}", String::from_utf8_lossy(&body)))
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
            "--disable-sync", "--disable-quic", "--window-size=1280,1500",
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

impl Driver {
    fn find(&self, css: &str) -> String {
        let v = self.cmd("POST", "element", Some(json!({"using": "css selector", "value": css})));
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        let v = self.cmd("POST", &format!("element/{id}/click"), Some(json!({})));
        assert!(v.is_null(), "clicking {css}: {v}");
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("element/{id}/clear"), Some(json!({})));
        let v = self.cmd("POST", &format!("element/{id}/value"), Some(json!({"text": text})));
        assert!(v.is_null(), "typing into {css}: {v}");
    }

    /// Runs `js` (which returns a value or null) every 250 ms until it returns non-null; fails on a
    /// page error, a Content-Security-Policy violation (a blocked loader never gets ready: say why
    /// at once) or after `limit`.
    fn wait_for(&self, what: &str, js: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let error = self.script("return (document.querySelector('#error') ?? document.querySelector('#docs-error'))?.textContent ?? null;");
            if let Some(e) = error.as_str() {
                panic!("while waiting for {what}, the page reports an error: {e}");
            }
            let violations = self.script("const v = window.__mlrCsp?.violations; return v?.length ? v : null;");
            if let Some(list) = violations.as_array() {
                let list: Vec<String> = list.iter().map(describe_violation).collect();
                panic!(
                    "while waiting for {what}: {} Content-Security-Policy violation(s):\n{}",
                    list.len(),
                    list.join("\n")
                );
            }
            let v = self.script(js);
            if !v.is_null() {
                return v;
            }
            let status = self.script("return document.querySelector('#status')?.textContent ?? null;");
            assert!(started.elapsed() < limit, "{what}: not there after {limit:?} (status {status})");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self.cmd("GET", "screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("a screenshot")).unwrap();
        std::fs::write(path, bytes).unwrap();
        println!("e2e: screenshot written to {}", path.display());
    }
}

/// Collects Content-Security-Policy violations into `window.__mlrCsp.violations`. Installed with
/// `Page.addScriptToEvaluateOnNewDocument`, so it runs in every new document before the page's own
/// scripts. The encoder worker is a classic worker that gloo-worker starts from a blob:
/// `importScripts("…/worker.js");wasm_bindgen(…)`; the watch prepends a listener to that blob's
/// text (by wrapping `Blob`, nothing else changes), which sends the worker's violations to the
/// page over a BroadcastChannel and says that it is there (`workers`). `probe(url)` makes every
/// hooked worker fetch `url`, for a deliberate violation.
const CSP_WATCH: &str = r#"(() => {
  const fields = (where, e) => ({ where, blockedURI: e.blockedURI, violatedDirective: e.violatedDirective,
    effectiveDirective: e.effectiveDirective, sourceFile: e.sourceFile, lineNumber: e.lineNumber,
    columnNumber: e.columnNumber, sample: e.sample, disposition: e.disposition, originalPolicy: e.originalPolicy });
  const watch = { violations: [], workers: 0, probe: () => {} };
  window.__mlrCsp = watch;
  document.addEventListener('securitypolicyviolation', e => watch.violations.push(fields('page', e)));
  let channel;
  try { channel = new BroadcastChannel('mlr-e2e-csp'); } catch (_) { return; }
  channel.onmessage = m => {
    if (m.data && m.data.hooked) watch.workers += 1;
    if (m.data && m.data.violation) watch.violations.push(m.data.violation);
  };
  watch.probe = url => channel.postMessage({ probe: url });
  const prelude = `(() => {
    const fields = ${fields.toString()};
    const c = new BroadcastChannel('mlr-e2e-csp');
    self.addEventListener('securitypolicyviolation', e => c.postMessage({ violation: fields('worker', e) }));
    c.onmessage = m => { if (m.data && m.data.probe) fetch(m.data.probe).catch(() => {}); };
    c.postMessage({ hooked: true });
  })();
`;
  const NativeBlob = window.Blob;
  window.Blob = new Proxy(NativeBlob, {
    construct(target, args, newTarget) {
      const [parts, options] = args;
      if (Array.isArray(parts) && typeof parts[0] === 'string' && parts[0].startsWith('importScripts(')
          && /javascript/.test((options && options.type) || '')) {
        args = [[prelude, ...parts], options];
      }
      return Reflect.construct(target, args, newTarget);
    },
  });
})();"#;

impl Driver {
    /// Runs `js` in every document opened from now on, before the document's own scripts
    /// (ChromeDriver's pass-through to the DevTools protocol).
    fn on_new_document(&self, js: &str) {
        let v = self.cmd(
            "POST",
            "goog/cdp/execute",
            Some(json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": js}})),
        );
        assert!(v["identifier"].is_string(), "Page.addScriptToEvaluateOnNewDocument: {v}");
    }

    /// The violations collected so far (see [`CSP_WATCH`]); the list is emptied.
    fn take_csp_violations(&self, step: &str) -> Vec<Value> {
        let v = self.script(
            "const w = window.__mlrCsp; if (!w) return null; const v = w.violations; w.violations = []; return v;",
        );
        v.as_array().cloned().unwrap_or_else(|| panic!("{step}: the CSP watch is not in the page ({v})"))
    }

    /// No Content-Security-Policy violation since the page was opened (or the last check).
    fn assert_no_csp_violations(&self, step: &str) {
        let violations = self.take_csp_violations(step);
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(describe_violation).collect();
            panic!("{step}: {} Content-Security-Policy violation(s):\n{}", violations.len(), list.join("\n"));
        }
        println!("e2e: {step}: no CSP violation");
    }

    /// The watch hears violations, on the page and in the worker, once per policy in force: a
    /// cross-origin image on the page (img-src) and a cross-origin fetch in the worker (connect-src)
    /// are refused by each of `policies` (the header's, by its nonce, and/or the meta tag's, by its
    /// hashes), and nothing else is collected.
    fn probe_csp_watch(&self, step: &str, policies: &[&str]) {
        self.assert_no_csp_violations(step);
        let workers = self.script("return window.__mlrCsp.workers;");
        assert!(workers.as_u64() >= Some(1), "{step}: the CSP listener is in no worker ({workers})");
        const PROBE: &str = "http://csp-probe.invalid/";
        self.script(&format!(
            "const i = document.createElement('img'); i.alt = ''; i.hidden = true; i.src = '{PROBE}page.png'; \
             document.body.append(i); i.remove(); window.__mlrCsp.probe('{PROBE}worker'); return null;"
        ));
        let expected: Vec<(&str, &str, String, &str)> = policies
            .iter()
            .flat_map(|&p| {
                [
                    ("page", "img-src", format!("{PROBE}page.png"), p),
                    ("worker", "connect-src", format!("{PROBE}worker"), p),
                ]
            })
            .collect();
        let count = |seen: &[Value], (place, directive, url, policy): &(&str, &str, String, &str)| {
            seen.iter()
                .filter(|v| {
                    v["where"] == *place
                        && v["effectiveDirective"] == *directive
                        && v["blockedURI"] == url.as_str()
                        && v["originalPolicy"].as_str().is_some_and(|p| p.contains(policy))
                })
                .count()
        };
        let started = Instant::now();
        let mut seen = Vec::new();
        while !expected.iter().all(|e| count(&seen, e) > 0) && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            seen.extend(self.take_csp_violations(step));
        }
        // Anything late (a second report of one violation) is collected too.
        std::thread::sleep(Duration::from_millis(500));
        seen.extend(self.take_csp_violations(step));
        let list = seen.iter().map(describe_violation).collect::<Vec<_>>().join("\n");
        for e in &expected {
            let (place, directive, _, policy) = e;
            assert_eq!(
                count(&seen, e),
                1,
                "{step}: the deliberate {directive} violation in the {place}, once from the policy with {policy}:\n{list}"
            );
        }
        assert_eq!(seen.len(), expected.len(), "{step}: nothing but the deliberate violations:\n{list}");
        println!(
            "e2e: {step}: the CSP listeners hear the page and the worker; policies in force: {}",
            policies.join(" + ")
        );
    }
}

fn describe_violation(v: &Value) -> String {
    format!(
        "  in the {}: {} (effective {}) blocked {} at {}:{}:{}, sample {}, {} policy {}",
        v["where"].as_str().unwrap_or("?"),
        v["violatedDirective"],
        v["effectiveDirective"],
        v["blockedURI"],
        v["sourceFile"],
        v["lineNumber"],
        v["columnNumber"],
        v["sample"],
        v["disposition"],
        v["originalPolicy"]
    )
}

/// Waits until the model is ready on a backend whose label starts with `prefix`; returns (backend
/// label, seconds).
fn wait_ready(driver: &Driver, prefix: &str, limit: Duration) -> (String, f64) {
    let started = Instant::now();
    let v = driver.wait_for(
        &format!("the model on {prefix}"),
        &format!(
            "const b = document.querySelector('#search'); const l = document.querySelector('#backend')?.textContent; \
             return (b && !b.disabled && l && l.startsWith({})) ? l : null;",
            json!(prefix)
        ),
        limit,
    );
    (v.as_str().unwrap().to_string(), started.elapsed().as_secs_f64())
}

/// The threads the page says the CPU encoder runs on (`#threads`).
fn page_threads(driver: &Driver) -> u64 {
    let v = driver.script("return document.querySelector('#threads')?.dataset.count ?? null;");
    v.as_str().and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("#threads: {v}"))
}

/// The encoding time of the last re-embedding (`#reembed-result`, milliseconds).
fn page_reembed_ms(driver: &Driver) -> f64 {
    let v = driver.script("return document.querySelector('#reembed-result')?.dataset.ms ?? null;");
    v.as_str().and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("#reembed-result ms: {v}"))
}

/// Submits `query` and returns the page's hits (id, score) once the results of that search are in.
fn search(driver: &Driver, query: &str) -> (Vec<(String, f64)>, f64) {
    let before = driver.script("return document.querySelector('#results')?.dataset.request ?? '';");
    // An empty `query` submits what the box already holds.
    if !query.is_empty() {
        driver.type_into("#query", query);
    }
    let started = Instant::now();
    driver.click("#search");
    let js = format!(
        "const r = document.querySelector('#results'); if (!r || r.dataset.request === {before}) return null; \
         return [...r.querySelectorAll('li.hit')].map(h => [h.dataset.id, Number(h.dataset.score)]);"
    );
    let hits = driver.wait_for(&format!("results for {query:?}"), &js, Duration::from_secs(900));
    let hits =
        hits.as_array().unwrap().iter().map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_f64().unwrap())).collect();
    (hits, started.elapsed().as_secs_f64())
}

/// Chooses `paths` in the file input `css` (ChromeDriver takes several paths, one per line).
fn upload(driver: &Driver, css: &str, paths: &[PathBuf]) {
    let id = driver.find(css);
    let text: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let v = driver.cmd("POST", &format!("element/{id}/value"), Some(json!({"text": text.join("\n")})));
    assert!(v.is_null(), "choosing files in {css}: {v}");
}

/// The "Your documents" list as (storage name, passages, embedded, bytes), once listed.
fn docs_list(driver: &Driver) -> Vec<(String, u64, u64, u64)> {
    let v = driver.wait_for(
        "the list of collections",
        "if (!document.querySelector('#docs-list, #docs-none')) return null; \
         return [...document.querySelectorAll('#docs-list tr.collection')].map(r => \
           [r.dataset.file, Number(r.dataset.passages), Number(r.dataset.embedded), Number(r.dataset.bytes)]);",
        Duration::from_secs(60),
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap(), r[2].as_u64().unwrap(), r[3].as_u64().unwrap())
        })
        .collect()
}

/// Makes a collection called `name` from `paths` in the page; returns its storage name and
/// passages.
fn docs_create(driver: &Driver, name: &str, paths: &[PathBuf]) -> (String, u64) {
    let before: Vec<String> = docs_list(driver).into_iter().map(|c| c.0).collect();
    driver.type_into("#docs-name", name);
    upload(driver, "#docs-files", paths);
    driver.click("#docs-add");
    let v = driver.wait_for(
        "the new collection",
        &format!(
            "const known = {}; const r = [...document.querySelectorAll('#docs-list tr.collection')] \
             .find(r => !known.includes(r.dataset.file)); return r ? [r.dataset.file, Number(r.dataset.passages)] : null;",
            json!(before)
        ),
        Duration::from_secs(120),
    );
    (v[0].as_str().unwrap().to_string(), v[1].as_u64().unwrap())
}

/// Clicks a button of collection `file`'s row.
fn docs_click(driver: &Driver, file: &str, button: &str) {
    driver.click(&format!("#docs-list tr.collection[data-file='{file}'] button.{button}"));
}

/// Waits until collection `file` is embedded whole; returns the page's (passages/s, tokens/s).
fn docs_wait_embedded(driver: &Driver, file: &str) -> (f64, f64) {
    let v = driver.wait_for(
        &format!("{file} embedded"),
        &format!(
            "const r = document.querySelector(\"#docs-list tr.collection[data-file='{file}']\"); \
             const e = document.querySelector('#docs-embedded'); \
             return (r && r.dataset.embedded === r.dataset.passages && e && !document.querySelector('#docs-job')) \
               ? [Number(e.dataset.passagesPerS), Number(e.dataset.tokensPerS)] : null;"
        ),
        Duration::from_secs(900),
    );
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

/// Searches the chosen collection; returns the hits (passage id, score) of that search.
fn docs_search(driver: &Driver, query: &str) -> Vec<(String, f64)> {
    let before = driver.script("return document.querySelector('#docs-results')?.dataset.request ?? '';");
    driver.type_into("#docs-query", query);
    driver.click("#docs-search");
    let hits = driver.wait_for(
        &format!("collection results for {query:?}"),
        &format!(
            "const r = document.querySelector('#docs-results'); if (!r || r.dataset.request === {before}) return null; \
             return [...r.querySelectorAll('li.hit')].map(h => [h.dataset.id, Number(h.dataset.score)]);"
        ),
        Duration::from_secs(300),
    );
    hits.as_array().unwrap().iter().map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_f64().unwrap())).collect()
}

/// The bytes of stored collection `file`, read from the page's origin private file system.
fn opfs_file(driver: &Driver, file: &str) -> Vec<u8> {
    use base64::Engine;
    let js = format!(
        "const done = arguments[arguments.length - 1]; \
         (async () => {{ const root = await navigator.storage.getDirectory(); \
           const dir = await root.getDirectoryHandle('mlr-collections'); \
           const f = await (await dir.getFileHandle({})).getFile(); \
           const bytes = new Uint8Array(await f.arrayBuffer()); let s = ''; \
           for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000)); \
           return btoa(s); }})().then(done, e => done('error: ' + e));",
        json!(file)
    );
    let v = driver.cmd("POST", "execute/async", Some(json!({"script": js, "args": []})));
    let text = v.as_str().unwrap_or_else(|| panic!("reading {file} from OPFS: {v}"));
    assert!(!text.starts_with("error"), "reading {file} from OPFS: {text}");
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

/// The files in the page's collection directory.
fn opfs_names(driver: &Driver) -> Vec<String> {
    let js = "const done = arguments[arguments.length - 1]; \
              (async () => { const root = await navigator.storage.getDirectory(); \
                const dir = await root.getDirectoryHandle('mlr-collections', {create: true}); \
                const out = []; for await (const k of dir.keys()) out.push(k); return out; })().then(done, e => done(['error: ' + e]));";
    let v = driver.cmd("POST", "execute/async", Some(json!({"script": js, "args": []})));
    v.as_array()
        .unwrap_or_else(|| panic!("listing OPFS: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// `mlr search --collection` on collection bytes, as (id, score) hits for [`check_ranking`].
fn native_collection_search(dist: &str, bytes: &[u8], query: &str, k: usize) -> Value {
    let path = std::env::temp_dir().join(format!("mlr-e2e-{}.mlrc", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let out: Value = serde_json::from_str(&mlr(&[
        "search",
        "--demo",
        dist,
        "--collection",
        &path.display().to_string(),
        "--json",
        "-k",
        &k.to_string(),
        query,
    ]))
    .unwrap();
    let _ = std::fs::remove_file(&path);
    let hits: Vec<Value> = out["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!({"id": format!("{:06}", h["passage"].as_u64().unwrap()), "score": h["score"]}))
        .collect();
    json!({"hits": hits, "groups": out["groups"], "shares": out["shares"]})
}

/// The first `n` paragraphs of XQuAD-R's English and German files as one JSON-lines file, each
/// line in its language and the two versions of a paragraph in one translation group.
fn xquad_parallel_jsonl(data: &Path, n: usize, out: &Path) {
    let mut lines = Vec::new();
    for lang in ["en", "de"] {
        let file: Value = serde_json::from_slice(&std::fs::read(data.join(format!("{lang}.json"))).unwrap()).unwrap();
        let paragraphs =
            file["data"].as_array().unwrap().iter().flat_map(|a| a["paragraphs"].as_array().unwrap().iter());
        for (i, p) in paragraphs.take(n).enumerate() {
            lines.push(json!({"text": p["context"], "lang": lang, "group": format!("p{i}")}).to_string());
        }
    }
    std::fs::write(out, lines.join("\n") + "\n").unwrap();
}

const DOCS_QUERY: &str = "Wann begann der Bau of the bridge in Prague?";

fn mlr(args: &[&str]) -> String {
    let bin = std::env::var_os("MLR_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
        target.join("release/mlr")
    });
    let out = Command::new(&bin)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    assert!(out.status.success(), "mlr {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The browser's ranking equals the native one: the same ids in the same order, except that two
/// candidates whose native scores are within 1e-4 may swap; scores agree within 2e-3.
fn check_ranking(label: &str, page: &[(String, f64)], native: &Value) {
    let native: Vec<(String, f64)> = native["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), h["score"].as_f64().unwrap()))
        .collect();
    assert_eq!(page.len(), native.len(), "{label}: number of results");
    let native_score = |id: &str| native.iter().find(|(n, _)| n == id).map(|(_, s)| *s);
    for (i, ((pid, pscore), (nid, nscore))) in page.iter().zip(&native).enumerate() {
        assert!((pscore - nscore).abs() < 2e-3, "{label}: rank {}: browser score {pscore} vs native {nscore}", i + 1);
        if pid != nid {
            let other = native_score(pid).unwrap_or(f64::NEG_INFINITY);
            assert!(
                (other - nscore).abs() < 1e-4,
                "{label}: rank {}: browser {pid} vs native {nid} ({other} vs {nscore})",
                i + 1
            );
        }
    }
    println!("e2e: {label}: top {} equal to `mlr search` (top 1 {} at {:.4})", page.len(), page[0].0, page[0].1);
}

const MIXED_QUERY: &str = "¿cuándo fue fundada la Universidad de Chicago 大学?";

#[test]
#[ignore = "needs the trunk build (dist/), the mlr binary and ChromeDriver: run by scripts/test.sh"]
fn demo_page_end_to_end() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let dist = env_path("MLR_DIST", || repo.join("dist"));
    assert!(dist.join("index.html").exists(), "{} has no index.html: run `trunk build`", dist.display());
    assert!(
        dist.join("manifest.json").exists(),
        "the trunk build does not link the demo data (run `mlr demo build`; MLR_DEMO_DIR set at build time?)"
    );
    let manifest: Value = serde_json::from_slice(&std::fs::read(dist.join("manifest.json")).unwrap()).unwrap();
    let model = manifest["models"][0]["name"].as_str().unwrap().to_string();
    let vectors = dist.join(manifest["models"][0]["vectors"]["path"].as_str().unwrap());
    // What a first visit downloads at least: the first model's files, every model's vectors (the
    // bias view compares models), the data files and the split (the word table's pieces come as
    // texts need them).
    let models_json = manifest["models"].as_array().unwrap();
    let download: u64 = models_json[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .chain(models_json.iter().map(|m| &m["vectors"]))
        .chain(manifest["dataset"]["files"].as_array().unwrap())
        .chain([&manifest["dataset"]["split"]])
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    let directives = csp_directives(&repo);
    let html = std::fs::read_to_string(dist.join("index.html")).unwrap();
    let hashes = check_meta_csp(&html, &directives);
    println!("e2e: dist/index.html has the meta CSP: Trunk.toml's directives but frame-ancestors, {hashes} inline script hash(es)");
    let plain = Arc::new(AtomicBool::new(false));
    let port = serve(dist.clone(), directives.join("; "), serve_headers(&repo), plain.clone());
    let driver = Driver::start();
    driver.on_new_document(CSP_WATCH);
    let page = format!("http://127.0.0.1:{port}/");
    let dist_s = dist.display().to_string();
    // Measurements, written to $MLR_E2E_REPORT (JSON) when set.
    let mut measured = serde_json::Map::new();
    measured.insert("download_bytes".into(), json!(download));

    // 1. Cold start on the wasm CPU backend (headless Chromium has only a software WebGPU adapter).
    driver.cmd("POST", "url", Some(json!({"url": page})));
    let (backend, cold) = wait_ready(&driver, "CPU", Duration::from_secs(900));
    println!(
        "e2e: cold start: model ready in {cold:.1} s on {backend:?} ({:.1} MB to download)",
        download as f64 / 1e6
    );
    assert!(backend.starts_with("CPU"), "headless Chromium has no hardware adapter, so the CPU backend: {backend:?}");
    // Cross-origin isolated, so the threaded worker on every core, and no notice.
    assert_eq!(driver.script("return self.crossOriginIsolated;"), json!(true), "the headers isolate the page");
    let cores = driver.script("return navigator.hardwareConcurrency;").as_u64().unwrap();
    let threads = page_threads(&driver);
    println!("e2e: cross-origin isolated: the encoder runs on {threads} thread(s), {cores} core(s)");
    if cores >= 2 {
        assert_eq!(threads, cores, "an isolated page runs the CPU encoder on every core");
        let note = driver.script("return document.querySelector('#threads-note')?.textContent ?? null;");
        assert_eq!(note, Value::Null, "no one-thread notice on an isolated page");
    }
    measured.insert("threads".into(), json!(threads));
    let (hits, first) = search(&driver, MIXED_QUERY);
    println!("e2e: first result {first:.1} s after the model was ready ({:.1} s after opening the page)", cold + first);
    // What this first visit downloaded, as the page counts it: the files above plus the pieces of
    // the word table the warm-up and this query needed.
    let visit = driver.script("return document.querySelector('#downloaded')?.dataset.bytes ?? null;");
    let visit: u64 = visit.as_str().and_then(|b| b.parse().ok()).unwrap_or_else(|| panic!("#downloaded: {visit}"));
    println!("e2e: the first visit downloaded {:.1} MB (the page's count)", visit as f64 / 1e6);
    assert!(visit >= download, "the page counts {visit} bytes, fewer than the manifest's {download} it must fetch");
    measured.insert("first_visit_bytes".into(), json!(visit));
    measured.insert("cpu_backend".into(), json!(backend));
    measured.insert("cold_ready_s".into(), json!(cold));
    measured.insert("cold_first_result_s".into(), json!(cold + first));
    measured.insert("cpu_search_s".into(), json!(first));
    let native: Value =
        serde_json::from_str(&mlr(&["search", "--demo", &dist_s, "--json", "-k", "10", MIXED_QUERY])).unwrap();
    check_ranking("mixed es+zh query on wasm CPU", &hits, &native);
    let shot = env_path("MLR_SCREENSHOT", || std::env::temp_dir().join("mlr-demo.png"));
    driver.screenshot(&shot);
    let url = driver.script("return location.search;");
    assert!(url.as_str().unwrap().contains("q="), "the query is in the URL: {url}");
    // Served as `trunk serve` does: the header's policy (nonce) and the meta tag's (hashes).
    driver.probe_csp_watch("cold start and a search", &["'nonce-", "'sha256-"]);

    // 2. The language-bias view of that query.
    driver.click("#bias-tab");
    let distance = driver.wait_for(
        "the bias view",
        "const d = document.querySelector('#bias-panel .rank-distance'); \
         return (d && document.querySelector('#bias-panel svg.bias-bars')) ? Number(d.dataset.value) : null;",
        Duration::from_secs(30),
    );
    assert_eq!(distance.as_u64(), native["rank_distance"].as_u64(), "rank distance in the bias view vs mlr search");
    let bars = driver.script(
        "return document.querySelectorAll('#bias-panel svg.bias-bars')[0].querySelectorAll('rect.bar').length;",
    );
    assert_eq!(
        bars.as_u64(),
        Some(manifest["dataset"]["langs"].as_array().unwrap().len() as u64),
        "a bar per language"
    );
    let shot = env_path("MLR_SCREENSHOT", || std::env::temp_dir().join("mlr-demo.png"));
    driver.screenshot(&shot.with_file_name(format!("{}-bias.png", shot.file_stem().unwrap().to_string_lossy())));
    driver.assert_no_csp_violations("the language-bias view");

    // A dataset question: with several models shipped (`mlr train` exports), one view per model.
    let models = manifest["models"].as_array().unwrap().len();
    if models > 1 {
        // The English data file as shipped (gzipped by default).
        let langs = manifest["dataset"]["langs"].as_array().unwrap();
        let en_index = langs.iter().position(|l| l == "en").expect("an English file");
        let en_entry = &manifest["dataset"]["files"][en_index];
        let stored = std::fs::read(dist.join(en_entry["path"].as_str().unwrap())).unwrap();
        let en_bytes = if en_entry["encoding"] == "gzip" {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(stored.as_slice()), &mut text).unwrap();
            text
        } else {
            stored
        };
        let en: Value = serde_json::from_slice(&en_bytes).unwrap();
        let question = en["data"][0]["paragraphs"][0]["qas"][0]["question"].as_str().unwrap().to_string();
        driver.click("#search-tab");
        search(&driver, &question);
        driver.click("#bias-tab");
        let views = driver.wait_for(
            "one bias view per model",
            "const n = document.querySelectorAll('#bias-panel svg.bias-bars').length; return n > 1 ? n : null;",
            Duration::from_secs(30),
        );
        assert_eq!(views.as_u64(), Some(models as u64), "a dataset question is shown under every model");
        driver.screenshot(&shot.with_file_name(format!("{}-models.png", shot.file_stem().unwrap().to_string_lossy())));
        println!("e2e: the dataset question {question:?}: bias views side by side for {models} models");
        driver.assert_no_csp_violations("bias views of several models");

        // The second model in the browser (a fine-tuned model's weights leave the word table to
        // the first's), against `mlr search` on the same files; then back to the first.
        for name in [models_json[1]["name"].as_str().unwrap(), model.as_str()] {
            driver.script(&format!(
                "const s = document.querySelector('#model'); s.value = {}; s.dispatchEvent(new Event('change')); return true;",
                json!(name)
            ));
            driver.wait_for(
                &format!("model {name} loaded"),
                &format!(
                    "const i = document.querySelector('#load-info'); const b = document.querySelector('#search'); \
                     return (i && i.dataset.model === {} && b && !b.disabled) ? true : null;",
                    json!(name)
                ),
                Duration::from_secs(900),
            );
            driver.click("#search-tab");
            let (hits, _) = search(&driver, MIXED_QUERY);
            let native: Value = serde_json::from_str(&mlr(&[
                "search",
                "--demo",
                &dist_s,
                "--model",
                name,
                "--json",
                "-k",
                "10",
                MIXED_QUERY,
            ]))
            .unwrap();
            check_ranking(&format!("mixed es+zh query, model {name}, wasm CPU"), &hits, &native);
        }
    }

    // 3. The evaluator in the worker vs `mlr eval --vectors` on the same subset.
    driver.click("#eval-tab");
    for lang in manifest["dataset"]["langs"].as_array().unwrap() {
        let lang = lang.as_str().unwrap();
        if !["en", "de", "zh"].contains(&lang) {
            driver.click(&format!("input.eval-lang[value='{lang}']"));
        }
    }
    driver.type_into("#eval-questions", "40");
    driver.click("#eval-run");
    let report = driver.wait_for(
        "the browser evaluation",
        "return document.querySelector('#eval-report')?.dataset.json ?? null;",
        Duration::from_secs(300),
    );
    let browser: Value = serde_json::from_str(report.as_str().unwrap()).unwrap();
    let out = std::env::temp_dir().join(format!("mlr-e2e-eval-{port}.json"));
    // The data the demo was built from (dist/data holds it gzipped, as the page downloads it).
    let data = repo.join("data/xquad-r").display().to_string();
    mlr(&[
        "eval",
        "--vectors",
        &vectors.display().to_string(),
        "--data",
        &data,
        "--langs",
        "de,en,zh",
        "--split",
        "test",
        "--max-questions",
        "40",
        "--out",
        &out.display().to_string(),
    ]);
    let native_eval: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let mut diff = 0f64;
    for key in ["per_lang", "pairs", "correlation_pairs"] {
        diff = diff.max(mlr_tests::json_max_diff(&browser[key], &native_eval[key], key).unwrap());
    }
    for (b, n) in [("mono", "mAP_mono"), ("cross", "mAP_cross"), ("multi", "mAP_multi")] {
        diff = diff.max((browser[b]["map"].as_f64().unwrap() - native_eval[n].as_f64().unwrap()).abs());
    }
    diff =
        diff.max((browser["rank_distance"].as_f64().unwrap() - native_eval["rank_distance"].as_f64().unwrap()).abs());
    assert_eq!(browser["n_queries"], native_eval["n_queries"]);
    println!(
        "e2e: evaluator in the browser (en,de,zh, test, 40 questions: {} queries): Mul. mAP {:.4}, max |browser − mlr eval| = {diff:.1e}",
        browser["n_queries"], browser["multi"]["map"].as_f64().unwrap()
    );
    // The same vectors and the same evaluator; the dot products are summed in another order
    // (native SGEMM with FMA, wasm SIMD without), so a near-tie of Q8_0 vectors can swap two
    // candidates: a few 1e-6 in a mAP, never more than 1e-5.
    assert!(diff < 1e-5, "browser evaluator differs from mlr eval by {diff}");
    measured.insert("evaluator_max_abs_diff".into(), json!(diff));
    measured.insert("evaluator_queries".into(), browser["n_queries"].clone());
    driver.assert_no_csp_violations("the evaluator");

    // 4. The in-browser encoder reproduces the precomputed (native) vectors.
    driver.click("#check-tab");
    driver.type_into("#reembed-count", "22");
    driver.click("#reembed-run");
    let min_cos = driver.wait_for(
        "re-embedding",
        "const r = document.querySelector('#reembed-result'); return r?.dataset.minCosine ? Number(r.dataset.minCosine) : null;",
        Duration::from_secs(600),
    );
    let reembed_ms = page_reembed_ms(&driver);
    println!(
        "e2e: 22 corpus sentences re-embedded in the browser in {reembed_ms:.0} ms on {threads} thread(s): min cosine {min_cos} to the precomputed vectors"
    );
    measured.insert("reembed_min_cosine".into(), min_cos.clone());
    measured.insert("reembed_ms".into(), json!(reembed_ms));
    assert!(min_cos.as_f64().unwrap() > 0.9995, "in-browser vectors vs precomputed: {min_cos}");
    driver.assert_no_csp_violations("re-embedding");

    // 4b. Your documents: two files in two languages into a collection, embedded in the worker,
    // searched with a mixed-language query, against `mlr search --collection` on the stored file.
    driver.click("#docs-tab");
    let fixtures = repo.join("tests/fixtures/docs");
    let (rivers, passages) =
        docs_create(&driver, "Rivers", &[fixtures.join("rivers-en.md"), fixtures.join("fluesse-de.jsonl")]);
    println!("e2e: documents: rivers-en.md + fluesse-de.jsonl read into {passages} passages ({rivers})");
    assert!(passages >= 10, "the two fixtures give at least 10 passages: {passages}");
    docs_click(&driver, &rivers, "docs-embed");
    docs_wait_embedded(&driver, &rivers);
    let page_hits = docs_search(&driver, DOCS_QUERY);
    let stored = opfs_file(&driver, &rivers);
    let native = native_collection_search(&dist_s, &stored, DOCS_QUERY, 10);
    check_ranking("your documents, mixed de+en query vs mlr search --collection", &page_hits, &native);
    // The two best hits (the Charles Bridge in German and in English) marked as translations:
    // the next search gives their group's ranks, as `mlr search --collection` does on the saved file.
    for (id, _) in &page_hits[..2] {
        driver.click(&format!("#docs-results input.docs-tick[data-id='{id}']"));
    }
    driver.click("#docs-mark");
    let group = driver.wait_for(
        "the marked translations",
        "return document.querySelector('#docs-marked')?.dataset.group ?? null;",
        Duration::from_secs(60),
    );
    let group = group.as_str().unwrap().to_string();
    docs_search(&driver, DOCS_QUERY);
    let distance = driver.script(&format!(
        "return document.querySelector(\"#docs-groups tr[data-group='{group}']\")?.dataset.distance ?? null;"
    ));
    let stored = opfs_file(&driver, &rivers);
    let native = native_collection_search(&dist_s, &stored, DOCS_QUERY, 10);
    let native_group = native["groups"].as_array().unwrap().iter().find(|g| g["group"] == group.as_str());
    let native_group = native_group.unwrap_or_else(|| panic!("group {group} in the saved file: {native}"));
    assert_eq!(
        distance.as_str().and_then(|d| d.parse::<u64>().ok()),
        native_group["rank_distance"].as_u64(),
        "the marked group's rank distance on the page and natively"
    );
    println!(
        "e2e: documents: {} and {} marked as translations (group {group}): rank distance {distance}",
        page_hits[0].0, page_hits[1].0
    );
    driver.click(&format!("#docs-list tr.collection[data-file='{rivers}'] button.docs-export"));
    driver.wait_for(
        "the export",
        "return [...document.querySelectorAll('#docs-panel p.muted')].some(p => p.textContent.startsWith('Exported')) ? true : null;",
        Duration::from_secs(60),
    );
    // A file dropped onto the form (a synthetic drop with a DataTransfer, as a browser makes it).
    let before: Vec<String> = docs_list(&driver).into_iter().map(|c| c.0).collect();
    driver.script(
        "const dt = new DataTransfer(); \
         dt.items.add(new File(['Der Rhein fließt durch Köln und Düsseldorf.\\n\\nThe Rhine flows through Cologne.'], 'dropped.txt', {type: 'text/plain'})); \
         document.querySelector('#docs-drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); return null;",
    );
    let dropped = driver.wait_for(
        "the dropped file's collection",
        &format!(
            "const known = {}; const r = [...document.querySelectorAll('#docs-list tr.collection')] \
             .find(r => !known.includes(r.dataset.file)); return r ? Number(r.dataset.passages) : null;",
            json!(before)
        ),
        Duration::from_secs(60),
    );
    assert_eq!(dropped.as_u64(), Some(2), "a dropped text file with two paragraphs gives two passages");
    println!("e2e: documents: a dropped file read into {dropped} passages");
    // Parallel paragraphs (XQuAD-R en + de, translation groups): the pace of embedding, a
    // search served while the embedding runs, cancel and resume, and the groups' rank distance.
    let sample_dir = std::env::temp_dir().join(format!("mlr-e2e-docs-{port}"));
    std::fs::create_dir_all(&sample_dir).unwrap();
    let sample = sample_dir.join("xquad-en-de.jsonl");
    xquad_parallel_jsonl(&repo.join("data/xquad-r"), 24, &sample);
    let (xquad, xquad_passages) = docs_create(&driver, "XQuAD-R en + de", std::slice::from_ref(&sample));
    docs_click(&driver, &xquad, "docs-embed");
    driver.wait_for(
        "the embedding under way",
        "const j = document.querySelector('#docs-job'); return (j && Number(j.dataset.done) > 0) ? true : null;",
        Duration::from_secs(300),
    );
    // Searched while it runs: answered between two batches, from the passages embedded so far.
    let question = "Which NFL team represented the AFC at Super Bowl 50?";
    let early = docs_search(&driver, question);
    let summary = driver.script("return document.querySelector('#docs-summary')?.textContent ?? null;");
    println!("e2e: documents: a search during the embedding: {} hits; {summary}", early.len());
    assert!(summary.as_str().unwrap().contains("embedded so far"), "served from what is done: {summary}");
    driver.click("#docs-cancel");
    let stopped = driver.wait_for(
        "the cancelled embedding",
        "const e = document.querySelector('#docs-embedded'); return (e && !document.querySelector('#docs-job')) ? e.textContent : null;",
        Duration::from_secs(120),
    );
    let partial = docs_list(&driver).into_iter().find(|c| c.0 == xquad).unwrap();
    println!("e2e: documents: cancelled at {} of {} passages: {stopped}", partial.2, partial.1);
    assert!(stopped.as_str().unwrap().contains("cancelled") && partial.2 < partial.1, "cancel stops the job part-way");
    docs_click(&driver, &xquad, "docs-embed");
    let (passages_per_s, tokens_per_s) = docs_wait_embedded(&driver, &xquad);
    let (_, n, _, bytes) = docs_list(&driver).into_iter().find(|c| c.0 == xquad).unwrap();
    assert_eq!(n, xquad_passages);
    let per_1000 = bytes as f64 * 1000.0 / n as f64;
    println!(
        "e2e: documents: {n} XQuAD-R passages (en + de) embedded at {passages_per_s:.1} passages/s, {tokens_per_s:.0} tokens/s on {threads} thread(s); stored in {bytes} bytes ({:.2} MB per 1,000 passages)",
        per_1000 / 1e6
    );
    let page_hits = docs_search(&driver, question);
    let native = native_collection_search(&dist_s, &opfs_file(&driver, &xquad), question, 10);
    check_ranking("your documents, parallel paragraphs", &page_hits, &native);
    let distance =
        driver.script("return document.querySelector(\"#docs-groups tr[data-group='p0']\")?.dataset.distance ?? null;");
    let native_p0 = native["groups"].as_array().unwrap().iter().find(|g| g["group"] == "p0").unwrap();
    assert_eq!(
        distance.as_str().and_then(|d| d.parse::<u64>().ok()),
        native_p0["rank_distance"].as_u64(),
        "the rank distance of group p0 on the page and natively"
    );
    driver.script("document.querySelector('#docs-shares').scrollIntoView({block: 'center'}); return null;");
    driver.screenshot(&shot.with_file_name(format!("{}-docs.png", shot.file_stem().unwrap().to_string_lossy())));
    measured.insert("docs_passages_per_s".into(), json!(passages_per_s));
    measured.insert("docs_tokens_per_s".into(), json!(tokens_per_s));
    measured.insert("docs_passages".into(), json!(n));
    measured.insert("docs_bytes_per_1000_passages".into(), json!(per_1000));
    driver.assert_no_csp_violations("your documents");

    // 5. A reload loads from the Cache API; a search from the URL runs by itself.
    let shared = format!("{page}?q={}&k=5", "Warsaw%20university%20founded");
    driver.cmd("POST", "url", Some(json!({"url": shared})));
    let reload = Instant::now();
    let (_, cached) = wait_ready(&driver, "CPU", Duration::from_secs(900));
    let downloaded = driver.script("return document.querySelector('#downloaded')?.dataset.bytes ?? null;");
    println!("e2e: reload: model ready in {cached:.1} s, {downloaded} bytes downloaded (cold: {cold:.1} s)");
    assert_eq!(downloaded.as_str(), Some("0"), "a reload downloads nothing: everything comes from the Cache API");
    let hits = driver.wait_for(
        "the search from the URL",
        "const r = document.querySelectorAll('#results li.hit'); return r.length ? [...r].map(h => [h.dataset.id, Number(h.dataset.score)]) : null;",
        Duration::from_secs(300),
    );
    measured.insert("cached_ready_s".into(), json!(cached));
    measured.insert("cached_first_result_s".into(), json!(reload.elapsed().as_secs_f64()));
    let hits: Vec<(String, f64)> =
        hits.as_array().unwrap().iter().map(|h| (h[0].as_str().unwrap().into(), h[1].as_f64().unwrap())).collect();
    let native: Value =
        serde_json::from_str(&mlr(&["search", "--demo", &dist_s, "--json", "-k", "5", "Warsaw university founded"]))
            .unwrap();
    check_ranking("query from the URL", &hits, &native);
    driver.assert_no_csp_violations("the reload and the search from the URL");
    // The collections are still there after the reload, embedded (nothing is embedded again),
    // and searched alike; then deleted, from the page and from the browser's storage.
    driver.click("#docs-tab");
    let list = docs_list(&driver);
    let kept =
        list.iter().find(|c| c.0 == rivers).unwrap_or_else(|| panic!("{rivers} is kept across visits: {list:?}"));
    assert_eq!(kept.1, kept.2, "kept embedded: {kept:?}");
    assert_eq!(
        driver.script("return document.querySelector('#docs-job') ? true : null;"),
        Value::Null,
        "no embedding after a reload"
    );
    driver.click(&format!("#docs-list tr.collection[data-file='{rivers}'] input[type=radio]"));
    let again = docs_search(&driver, DOCS_QUERY);
    let native = native_collection_search(&dist_s, &stored, DOCS_QUERY, 10);
    check_ranking("your documents after a reload", &again, &native);
    for (file, ..) in &list {
        docs_click(&driver, file, "docs-delete");
        driver.wait_for(
            &format!("{file} deleted"),
            &format!("return document.querySelector(\"#docs-list tr.collection[data-file='{file}']\") ? null : true;"),
            Duration::from_secs(60),
        );
    }
    assert!(docs_list(&driver).is_empty(), "every collection deleted");
    assert_eq!(opfs_names(&driver), Vec::<String>::new(), "nothing left in the browser's storage");
    println!("e2e: documents: kept across the reload, searched alike, then deleted");
    driver.click("#search-tab");

    // Empty and 10,000-character queries.
    driver.type_into("#query", "   ");
    driver.click("#search");
    let hint = driver.wait_for(
        "the empty-query hint",
        "return document.querySelector('#query-hint')?.textContent || null;",
        Duration::from_secs(10),
    );
    println!("e2e: whitespace-only query: {hint}");
    // 10,000 characters, put in the box at once (typing them key by key takes minutes).
    let long = "Warsaw ".repeat(1430);
    driver.script(&format!(
        "const q = document.querySelector('#query'); q.value = {}; q.dispatchEvent(new Event('input', {{bubbles: true}})); return null;",
        json!(long)
    ));
    let (hits, t) = search(&driver, "");
    let truncated = driver.script("return document.querySelector('#truncated')?.textContent ?? null;");
    println!("e2e: a {}-character query: {} results in {t:.1} s; {truncated}", long.len(), hits.len());
    assert!(!hits.is_empty() && truncated.is_string(), "the long query is cut to 512 tokens and says so");
    driver.assert_no_csp_violations("empty and long queries");

    // A phone-sized window: one column, nothing wider than the screen.
    driver.click("#search-tab");
    driver.cmd("POST", "window/rect", Some(json!({"width": 390, "height": 844})));
    std::thread::sleep(Duration::from_millis(500));
    let overflow =
        driver.script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];");
    println!("e2e: phone-sized window: page width {} px in a {} px viewport", overflow[0], overflow[1]);
    if overflow[0].as_u64() > overflow[1].as_u64() {
        let wide = driver.script(
            "const w = document.documentElement.clientWidth; return [...document.querySelectorAll('body *')] \
             .filter(e => e.getBoundingClientRect().right > w + 0.5 && !(e.parentElement.getBoundingClientRect().right > w + 0.5)).slice(0, 8) \
             .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
        );
        panic!("the page scrolls sideways on a phone: {overflow}; too wide: {wide}");
    }
    let phone = env_path("MLR_SCREENSHOT", || std::env::temp_dir().join("mlr-demo.png"));
    driver.screenshot(&phone.with_file_name(format!("{}-phone.png", phone.file_stem().unwrap().to_string_lossy())));
    driver.cmd("POST", "window/rect", Some(json!({"width": 1280, "height": 1500})));
    driver.assert_no_csp_violations("the phone-sized window");

    // 6. WebGPU: the software adapter, one short query.
    driver.click("#software-gpu");
    let (backend, gpu_load) = wait_ready(&driver, "WebGPU", Duration::from_secs(1800));
    println!("e2e: WebGPU: model ready in {gpu_load:.1} s on {backend:?}");
    assert!(backend.starts_with("WebGPU"), "the toggle moves the encoder to WebGPU: {backend:?}");
    // On an isolated page the toggle reloads the page (the WebGPU worker is another build), which
    // runs the address's query first: let it finish, so that the search below is timed alone.
    let url_query = driver.script("return new URLSearchParams(location.search).get('q');");
    if url_query.as_str().is_some_and(|q| !q.trim().is_empty()) {
        driver.wait_for(
            "the address's query on WebGPU",
            "const r = document.querySelector('#results'); return (r && r.dataset.request && document.querySelector('#results li.hit')) ? true : null;",
            Duration::from_secs(1800),
        );
    }
    let (hits, t) = search(&driver, "Warsaw");
    let native: Value =
        serde_json::from_str(&mlr(&["search", "--demo", &dist_s, "--json", "-k", "5", "Warsaw"])).unwrap();
    let hits: Vec<(String, f64)> = hits.into_iter().take(5).collect();
    println!("e2e: WebGPU search took {t:.1} s");
    measured.insert("gpu_backend".into(), json!(backend));
    measured.insert("gpu_ready_s".into(), json!(gpu_load));
    measured.insert("gpu_search_s".into(), json!(t));
    check_ranking(&format!("one-word query on {backend}"), &hits, &native);
    driver.assert_no_csp_violations("WebGPU");

    // 7. As a static host serves dist/: no header, trunk's nonce placeholder left in. The meta tag's
    // policy alone governs the page; the loader runs by its hash, the worker inherits the policy.
    plain.store(true, Ordering::SeqCst);
    driver.cmd("POST", "url", Some(json!({"url": page})));
    let (backend, ready) = wait_ready(&driver, "CPU", Duration::from_secs(900));
    let nonce = driver.script("return document.querySelector('script[nonce]')?.getAttribute('nonce') ?? null;");
    assert_eq!(nonce.as_str(), Some("{{__TRUNK NONCE__}}"), "the page as in dist/, the nonce placeholder left in");
    println!("e2e: static host (no CSP header, nonce attribute {nonce}): model ready in {ready:.1} s on {backend:?}");
    // No isolation: one thread, and the page says why.
    assert_eq!(driver.script("return self.crossOriginIsolated;"), json!(false), "a static host sends no headers");
    assert_eq!(page_threads(&driver), 1, "without isolation the encoder runs on one thread");
    let note = driver.script("return document.querySelector('#threads-note')?.textContent ?? null;");
    let note = note.as_str().unwrap_or_else(|| panic!("no one-thread notice without isolation: {note}")).to_string();
    assert!(note.contains("not cross-origin isolated"), "the notice says why: {note:?}");
    println!("e2e: static host: one thread, the page says {note:?}");
    let (hits, _) = search(&driver, "Warsaw");
    let native: Value =
        serde_json::from_str(&mlr(&["search", "--demo", &dist_s, "--json", "-k", "10", "Warsaw"])).unwrap();
    check_ranking("one-word query on one thread (static host)", &hits, &native);
    driver.probe_csp_watch("static host (meta policy only)", &["'sha256-"]);
    // The same sentences as step 4 on one thread: the threads' speed-up on this machine.
    driver.click("#check-tab");
    driver.type_into("#reembed-count", "22");
    driver.click("#reembed-run");
    driver.wait_for(
        "re-embedding on one thread",
        "const r = document.querySelector('#reembed-result'); return r?.dataset.ms ? Number(r.dataset.ms) : null;",
        Duration::from_secs(600),
    );
    let one_thread_ms = page_reembed_ms(&driver);
    println!(
        "e2e: 22 sentences re-embedded on one thread in {one_thread_ms:.0} ms, on {threads} in {reembed_ms:.0} ms: {:.2}x",
        one_thread_ms / reembed_ms
    );
    measured.insert("reembed_one_thread_ms".into(), json!(one_thread_ms));
    plain.store(false, Ordering::SeqCst);
    measured.insert("model".into(), json!(model));
    measured.insert("candidates".into(), manifest["dataset"]["n_candidates"].clone());
    if let Some(path) = std::env::var_os("MLR_E2E_REPORT") {
        std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(measured)).unwrap() + "\n").unwrap();
        println!("e2e: measurements written to {}", PathBuf::from(path).display());
    }
}
