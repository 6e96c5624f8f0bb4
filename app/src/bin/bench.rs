//! The browser benchmark page's entry point (`scripts/bench_browser/mlr.html`): runs `mlr_app::bench` with the
//! options of the page's query string and writes the outcome into `#result` (JSON, with
//! `data-state` set to `done` or `error`), progress into `#progress` and the console.
use mlr_app::bench::{run, Options};
use wasm_bindgen::JsValue;

fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

fn say(line: &str) {
    web_sys::console::log_1(&JsValue::from_str(line));
    if let Some(p) = element("progress") {
        p.set_text_content(Some(line));
    }
}

fn finish(state: &str, text: &str) {
    if let Some(r) = element("result") {
        r.set_text_content(Some(text));
        let _ = r.set_attribute("data-state", state);
    }
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("panicked: {info}");
        web_sys::console::error_1(&JsValue::from_str(&message));
        finish("error", &message);
    }));
    wasm_bindgen_futures::spawn_local(async {
        let query = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
        let outcome = match Options::from_query(&query) {
            Ok(options) => run(&options, say).await,
            Err(e) => Err(e),
        };
        match outcome.and_then(|out| serde_json::to_string(&out).map_err(|e| e.to_string())) {
            Ok(json) => {
                say("done");
                finish("done", &json);
            }
            Err(e) => {
                say(&format!("error: {e}"));
                finish("error", &e);
            }
        }
    });
}
