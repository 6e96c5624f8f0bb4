//! The answer to the newest search: what the search is doing while it waits, the timing, the
//! truncation notice, the parallel answer group, and the ranked sentences ([`HitItem`]), each with its
//! paragraph on demand.

use std::rc::Rc;

use yew::prelude::*;

use super::group::GroupLine;
use crate::protocol::Hit;
use crate::state::SearchResults;

/// What the ◆ mark of a hit means.
const PARALLEL_TITLE: &str = "answers the same question as the bias view's group (a parallel answer)";

/// Properties of [`Results`].
#[derive(Properties, PartialEq)]
pub(crate) struct ResultsProps {
    /// What the newest search is doing, if it is not answered yet.
    pub status: Option<String>,
    /// The answer to the newest search.
    pub results: Option<Rc<SearchResults>>,
}

/// The answer to the newest search.
#[component]
pub(crate) fn Results(props: &ResultsProps) -> Html {
    html! {
        <div class="results">
            if let Some(text) = props.status.clone() {
                <p id="search-status" class="muted" role="status">{ text }</p>
            }
            if let Some(r) = &props.results {
                <p id="results-summary" class="summary" role="status">
                    { format!(
                        "{} results in {:.1} ms (encode {:.1} ms, rank {:.1} ms)",
                        r.hits.len(),
                        r.encode_ms + r.rank_ms,
                        r.encode_ms,
                        r.rank_ms
                    ) }
                    if let Some(lang) = &r.lang {
                        { format!(" · only {lang}, pooled ranks beside") }
                    }
                </p>
                if r.truncated {
                    <p id="truncated" class="notice">
                        { format!("Your query was cut to the encoder's 512 tokens ({} tokens).", r.tokens) }
                    </p>
                }
                if let Some(group) = &r.group {
                    <GroupLine id="group" group={group.clone()} />
                }
                if r.hits.is_empty() {
                    <p class="muted">{ "No candidate to show." }</p>
                }
                <ol id="results" class="hits" data-request={r.id.to_string()}>
                    for hit in r.hits.iter() {
                        <HitItem key={format!("{}:{}", r.id, hit.id)} hit={hit.clone()} show_pooled={r.lang.is_some()} />
                    }
                </ol>
            }
        </div>
    }
}

/// Properties of [`HitItem`].
#[derive(Properties, PartialEq)]
pub(crate) struct HitProps {
    /// The ranked candidate.
    pub hit: Hit,
    /// Show its pooled rank (a language filter is on).
    pub show_pooled: bool,
}

/// One ranked sentence, with its paragraph on demand.
#[component]
pub(crate) fn HitItem(props: &HitProps) -> Html {
    let open = use_state(|| false);
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let hit = &props.hit;
    let context_id = format!("context-{}", hit.id);
    html! {
        <li
            class={classes!("hit", hit.parallel.then_some("parallel"))}
            data-id={hit.id.clone()}
            data-score={hit.score.to_string()}
            data-lang={hit.lang.clone()}
            data-parallel={hit.parallel.to_string()}
        >
            <div class="hit-meta">
                <span class="rank">{ format!("#{}", hit.rank) }</span>
                <span class="score" title="cosine similarity">{ format!("{:.4}", hit.score) }</span>
                <span class="lang">{ hit.lang.to_uppercase() }</span>
                if hit.parallel {
                    <span class="parallel-mark" role="img" title={PARALLEL_TITLE} aria-label={PARALLEL_TITLE}>{ "◆" }</span>
                }
                if props.show_pooled {
                    <span class="pooled" title="rank in the pooled ranking of all languages">
                        { format!("pooled #{}", hit.pooled_rank) }
                    </span>
                }
            </div>
            <p class="sentence" lang={hit.lang.clone()} dir="auto">{ hit.sentence.clone() }</p>
            <button
                type="button"
                class="context-toggle"
                aria-expanded={(*open).to_string()}
                aria-controls={context_id.clone()}
                onclick={toggle}
            >
                { if *open { "hide context" } else { "context" } }
            </button>
            <div id={context_id} class="context" hidden={!*open}>
                <p class="article" dir="auto">{ hit.article.clone() }</p>
                <p class="paragraph" lang={hit.lang.clone()} dir="auto">{ highlight(&hit.paragraph, &hit.sentence) }</p>
            </div>
        </li>
    }
}

/// `paragraph` with `sentence` marked, if it occurs in it.
fn highlight(paragraph: &str, sentence: &str) -> Html {
    match paragraph.find(sentence).filter(|_| !sentence.is_empty()) {
        Some(at) => {
            let (before, rest) = paragraph.split_at(at);
            let (marked, after) = rest.split_at(sentence.len());
            html! { <>{ before.to_string() }<mark>{ marked.to_string() }</mark>{ after.to_string() }</> }
        }
        None => html! { <>{ paragraph.to_string() }</> },
    }
}
