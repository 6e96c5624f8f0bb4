//! The tab buttons (a WAI-ARIA tab list: arrow keys, Home and End move between them, and only the
//! selected tab is in the Tab order).

use wasm_bindgen::{JsCast, JsValue};
use yew::prelude::*;

use crate::state::Tab;

/// Properties of [`Tabs`].
#[derive(Properties, PartialEq)]
pub(crate) struct TabsProps {
    /// The tab shown.
    pub current: Tab,
    /// A tab was chosen.
    pub on_select: Callback<Tab>,
}

/// The tab buttons.
#[component]
pub(crate) fn Tabs(props: &TabsProps) -> Html {
    html! {
        <div class="tabs" role="tablist" aria-label="Views">
            { for Tab::ALL.into_iter().map(|tab| tab_button(tab, props.current, &props.on_select)) }
        </div>
    }
}

/// One tab button; only the selected one is in the Tab order.
fn tab_button(tab: Tab, current: Tab, on_select: &Callback<Tab>) -> Html {
    let selected = tab == current;
    let onclick = on_select.reform(move |_: MouseEvent| tab);
    let onkeydown = {
        let on_select = on_select.clone();
        Callback::from(move |e: KeyboardEvent| {
            let next = match e.key().as_str() {
                "ArrowRight" => tab.step(1),
                "ArrowLeft" => tab.step(-1),
                "Home" => Tab::ALL[0],
                "End" => Tab::ALL[Tab::ALL.len() - 1],
                _ => return,
            };
            e.prevent_default();
            on_select.emit(next);
            focus(next.tab_id());
        })
    };
    html! {
        <button
            type="button"
            role="tab"
            id={tab.tab_id()}
            class={classes!("tab", selected.then_some("active"))}
            aria-selected={selected.to_string()}
            aria-controls={tab.panel_id()}
            tabindex={if selected { "0" } else { "-1" }}
            onclick={onclick}
            onkeydown={onkeydown}
        >
            { tab.label() }
        </button>
    }
}

/// Moves the keyboard focus to the element `id` (`HTMLElement.focus`, called by name).
fn focus(id: &str) {
    let Some(element) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id)) else {
        return;
    };
    let target: &JsValue = element.as_ref();
    if let Ok(method) = js_sys::Reflect::get(target, &"focus".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let _ = method.call0(target);
    }
}
