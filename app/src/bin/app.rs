//! The page's entry point.
fn main() {
    yew::Renderer::<mlr_app::App>::new().render();
}
