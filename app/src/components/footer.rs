//! The page's footer: the data's and the model's licences, and what runs where.

use std::rc::Rc;

use yew::prelude::*;

use crate::protocol::Manifest;

/// Properties of [`Footer`].
#[derive(Properties, PartialEq)]
pub(crate) struct FooterProps {
    /// The manifest (the dataset's name and licence), once read.
    pub manifest: Option<Rc<Manifest>>,
}

/// Licences and what runs where.
#[component]
pub(crate) fn Footer(props: &FooterProps) -> Html {
    let data = props
        .manifest
        .as_ref()
        .map_or_else(|| "Data: XQuAD-R.".to_string(), |m| format!("Data: {} — {}.", m.dataset.name, m.dataset.licence));
    html! {
        <footer class="site">
            <p>
                { data }
                { " Model: multilingual-e5 (MIT). " }
                { "Rust: burn + yew; no data leaves your browser." }
            </p>
        </footer>
    }
}
