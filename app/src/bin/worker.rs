//! The encoder worker's entry point.
use yew_agent::Registrable;

fn main() {
    // A panic aborts the worker (wasm32 has no unwinding): say so on the page before it dies.
    std::panic::set_hook(Box::new(|info| mlr_app::crash::report(&info.to_string())));
    mlr_app::EncoderReactor::registrar().encoding::<mlr_app::protocol::JsCodec>().register();
}
