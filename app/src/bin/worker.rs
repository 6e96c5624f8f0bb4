//! The encoder worker's entry point.
use yew_agent::Registrable;

fn main() {
    mlr_app::EncoderReactor::registrar().encoding::<mlr_app::protocol::JsCodec>().register();
}
