//! When the worker dies. A panic in wasm32 aborts the worker (no unwinding), and yew-agent gives
//! the page no sign of it, so the worker's panic hook posts the message on a `BroadcastChannel`
//! that the page listens to, and the page offers a reload.

use js_sys::{Function, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// The channel's name.
pub const CHANNEL: &str = "mlr-worker-crash";

fn channel() -> Option<JsValue> {
    let ctor: Function =
        Reflect::get(&js_sys::global(), &JsValue::from_str("BroadcastChannel")).ok()?.dyn_into().ok()?;
    Reflect::construct(&ctor, &js_sys::Array::of1(&JsValue::from_str(CHANNEL))).ok()
}

/// Worker side: logs `message` to the console and posts it to the page.
pub fn report(message: &str) {
    web_sys::console::error_1(&JsValue::from_str(&format!("mlr worker stopped: {message}")));
    if let Some(ch) = channel() {
        if let Ok(post) = Reflect::get(&ch, &JsValue::from_str("postMessage")).and_then(|p| p.dyn_into::<Function>()) {
            let _ = post.call1(&ch, &JsValue::from_str(message));
        }
    }
}

/// Page side: calls `on_crash(message)` when the worker reports a panic. The listener lives as
/// long as the page.
pub fn listen(on_crash: impl Fn(String) + 'static) {
    let Some(ch) = channel() else {
        return;
    };
    let handler = Closure::<dyn Fn(JsValue)>::new(move |event: JsValue| {
        let data = Reflect::get(&event, &JsValue::from_str("data")).ok().and_then(|d| d.as_string());
        on_crash(data.unwrap_or_else(|| "unknown error".into()));
    });
    let _ = Reflect::set(&ch, &JsValue::from_str("onmessage"), handler.as_ref());
    handler.forget();
    // Keep the channel object alive with the page.
    let _ = Reflect::set(&js_sys::global(), &JsValue::from_str("__mlrCrashChannel"), &ch);
}
