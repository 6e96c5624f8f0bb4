//! The line that names the parallel answer group of a search: "Parallel answers of: «…» (why)".
//! Shown above the results and in the language-bias view.

use yew::prelude::*;

use crate::protocol::AnswerGroup;

/// Properties of [`GroupLine`].
#[derive(Properties, PartialEq)]
pub(crate) struct GroupLineProps {
    /// The element's id.
    pub id: &'static str,
    /// The group.
    pub group: AnswerGroup,
}

/// "Parallel answers of: «…» (why)", as the element `id`.
#[component]
pub(crate) fn GroupLine(props: &GroupLineProps) -> Html {
    let group = &props.group;
    html! {
        <p id={props.id} class="group" data-question={group.question.clone()}>
            <span class="parallel-mark" aria-hidden="true">{ "◆ " }</span>
            { "Parallel answers of: «" }
            <span dir="auto">{ group.text.clone() }</span>
            { format!("» ({})", group.reason) }
        </p>
    }
}
