//! Search over a collection's embedded passages and its language-bias view.
//!
//! Rankings follow `mlr_eval::score` and the demo's corpus search (`mlr_demo::corpus`): cosine of
//! unit vectors, ties broken by passage id ([`Collection::passage_id`]) in descending byte order.
//!
//! The bias view of one query has two parts:
//! - [`shares`]: for each language of the collection, its share of the embedded passages against
//!   its share of the query's top k. A retriever without language bias gives a language about its
//!   pool share of the top k whatever the query's language (when the relevant passages are spread
//!   alike); [`BiasTable`] averages the top-k shares over queries, by the query's language.
//! - [`group_ranks`]: for a group of passages that are translations of each other, where each
//!   language's version lands in the pooled ranking, and their rank distance (max − min rank, the
//!   paper's measure for one query).

use mlr_demo::corpus::{Ranked, Ranking};
use mlr_eval::score::{dot_scores, ranking, tie_order};
use serde::{Deserialize, Serialize};

use crate::{Collection, DocsError};

/// Ranks the embedded passages for a query vector of the model's width.
pub fn rank(c: &Collection, query: &[f32]) -> Result<Ranking, DocsError> {
    let dim = c.model.dim;
    if query.len() != dim {
        return Err(DocsError::Search(format!("a query vector of width {}, the collection's are {dim}", query.len())));
    }
    if query.iter().any(|x| !x.is_finite()) {
        return Err(DocsError::Search("the query vector has a non-finite value".into()));
    }
    let n = c.embedded();
    let mut scores = vec![0f32; n];
    dot_scores(query, &c.vectors, dim, &mut scores);
    let ids: Vec<String> = (0..n).map(Collection::passage_id).collect();
    let order = ranking(&scores, &tie_order(&ids));
    let mut position = vec![0; n];
    for (p, &i) in order.iter().enumerate() {
        position[i] = p;
    }
    Ok(Ranking { scores, order, position })
}

/// The first `k` passages of the pooled ranking, or of language `lang` only (which must be a
/// language of the collection).
pub fn top(c: &Collection, ranking: &Ranking, k: usize, lang: Option<&str>) -> Result<Vec<Ranked>, DocsError> {
    if let Some(l) = lang {
        if !c.passages.iter().any(|p| p.lang == l) {
            return Err(DocsError::Search(format!("the collection has no passage in language {l:?}")));
        }
    }
    Ok(ranking
        .order
        .iter()
        .filter(|&&i| lang.is_none_or(|l| c.passages[i].lang == l))
        .take(k)
        .enumerate()
        .map(|(r, &i)| Ranked { candidate: i, rank: r + 1, pooled_rank: ranking.rank(i), score: ranking.scores[i] })
        .collect())
}

/// One language's place in the collection and in a query's top k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LangShare {
    /// Language code.
    pub lang: String,
    /// Embedded passages in this language.
    pub passages: usize,
    /// Their share of the embedded passages.
    pub pool_share: f64,
    /// Passages of this language in the top k.
    pub top: usize,
    /// Their share of the top k.
    pub top_share: f64,
}

/// Each language's share of the pool and of the top `k` (languages by pool size, then code).
pub fn shares(c: &Collection, ranking: &Ranking, k: usize) -> Vec<LangShare> {
    let n = c.embedded();
    let k = k.min(n);
    let mut out: Vec<LangShare> = Vec::new();
    fn slot(out: &mut Vec<LangShare>, lang: &str) -> usize {
        match out.iter().position(|s| s.lang == lang) {
            Some(i) => i,
            None => {
                out.push(LangShare { lang: lang.to_string(), passages: 0, pool_share: 0.0, top: 0, top_share: 0.0 });
                out.len() - 1
            }
        }
    }
    for p in &c.passages[..n] {
        let i = slot(&mut out, &p.lang);
        out[i].passages += 1;
    }
    for &i in &ranking.order[..k] {
        let s = slot(&mut out, &c.passages[i].lang);
        out[s].top += 1;
    }
    for s in &mut out {
        s.pool_share = s.passages as f64 / n.max(1) as f64;
        s.top_share = s.top as f64 / k.max(1) as f64;
    }
    out.sort_by(|a, b| b.passages.cmp(&a.passages).then_with(|| a.lang.cmp(&b.lang)));
    out
}

/// Top-k shares averaged over queries, by the query's language.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BiasTable {
    /// Per query language: queries seen, and the summed top-k share of each passage language.
    pub rows: Vec<BiasRow>,
}

/// The queries of one language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasRow {
    /// The queries' language.
    pub query_lang: String,
    /// How many.
    pub queries: usize,
    /// Passage language → mean share of the top k over those queries.
    pub mean_top_share: Vec<(String, f64)>,
}

impl BiasTable {
    /// Adds one query's shares.
    pub fn add(&mut self, query_lang: &str, shares: &[LangShare]) {
        let row = match self.rows.iter().position(|r| r.query_lang == query_lang) {
            Some(i) => &mut self.rows[i],
            None => {
                self.rows.push(BiasRow { query_lang: query_lang.to_string(), queries: 0, mean_top_share: Vec::new() });
                self.rows.last_mut().expect("just pushed")
            }
        };
        let n = row.queries as f64;
        for (_, mean) in &mut row.mean_top_share {
            *mean *= n / (n + 1.0);
        }
        for s in shares {
            match row.mean_top_share.iter_mut().find(|(l, _)| *l == s.lang) {
                Some((_, mean)) => *mean += s.top_share / (n + 1.0),
                None => row.mean_top_share.push((s.lang.clone(), s.top_share / (n + 1.0))),
            }
        }
        row.queries += 1;
    }
}

/// Where one language's version of a translation group lands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRank {
    /// Its best-ranked embedded passage in this language (a long text may be cut in parts).
    pub passage: usize,
    /// The language.
    pub lang: String,
    /// 1-based pooled rank.
    pub rank: usize,
    /// Its score.
    pub score: f32,
}

/// For translation group `key`, each language's best-ranked embedded passage, by rank, and the
/// rank distance (max − min over the languages; 0 for fewer than two).
pub fn group_ranks(c: &Collection, ranking: &Ranking, key: &str) -> Result<(Vec<GroupRank>, usize), DocsError> {
    let members: Vec<usize> = (0..c.passages.len()).filter(|&i| c.passages[i].group.as_deref() == Some(key)).collect();
    if members.is_empty() {
        return Err(DocsError::Search(format!("no translation group {key:?}")));
    }
    let mut best: Vec<GroupRank> = Vec::new();
    for &i in members.iter().filter(|&&i| i < c.embedded()) {
        let r =
            GroupRank { passage: i, lang: c.passages[i].lang.clone(), rank: ranking.rank(i), score: ranking.scores[i] };
        match best.iter_mut().find(|b| b.lang == r.lang) {
            Some(b) if r.rank < b.rank => *b = r,
            Some(_) => {}
            None => best.push(r),
        }
    }
    best.sort_by_key(|b| b.rank);
    let distance = match (best.first(), best.last()) {
        (Some(a), Some(b)) => b.rank - a.rank,
        _ => 0,
    };
    Ok((best, distance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::{ModelRef, Passage, Source};
    use crate::lang::LangSource;
    use crate::read::Place;

    /// Five passages in two languages with 2-d unit vectors at known angles.
    fn collection() -> Collection {
        let model = ModelRef { name: "m".into(), key: "k".into(), dim: 2 };
        let mut c = Collection::new("t", model, "now", 64);
        c.sources.push(Source { name: "a.txt".into(), bytes: 1, format: "text".into(), skipped: 0 });
        for (i, lang) in ["en", "de", "en", "de", "en"].iter().enumerate() {
            c.passages.push(Passage {
                text: format!("p{i}"),
                lang: lang.to_string(),
                lang_source: LangSource::Given,
                source: 0,
                place: Place::Paragraph(i + 1),
                part: 1,
                id: None,
                group: (i == 1 || i == 4 || i == 3).then(|| "g".to_string()),
                tokens: 1,
            });
        }
        // Scores against (1, 0): 0.6, 0.8, 1.0, 0.8 (a tie with passage 1), -1.
        c.push_vectors(&[0.6, 0.8, 0.8, 0.6, 1.0, 0.0, 0.8, -0.6, -1.0, 0.0]).unwrap();
        c
    }

    #[test]
    fn ranking_ties_and_one_language() {
        let c = collection();
        let r = rank(&c, &[1.0, 0.0]).unwrap();
        // 1 and 3 tie at 0.8: descending id order puts 000003 first.
        assert_eq!(r.order, vec![2, 3, 1, 0, 4]);
        let de = top(&c, &r, 10, Some("de")).unwrap();
        assert_eq!(
            de.iter().map(|h| (h.candidate, h.rank, h.pooled_rank)).collect::<Vec<_>>(),
            vec![(3, 1, 2), (1, 2, 3)]
        );
        assert_eq!(top(&c, &r, 2, None).unwrap().len(), 2);
        assert!(top(&c, &r, 2, Some("zh")).unwrap_err().to_string().contains("no passage in language \"zh\""));
        assert!(rank(&c, &[1.0]).is_err() && rank(&c, &[f32::NAN, 0.0]).is_err());
    }

    #[test]
    fn shares_groups_and_the_table() {
        let c = collection();
        let r = rank(&c, &[1.0, 0.0]).unwrap();
        let s = shares(&c, &r, 2);
        assert_eq!(
            s.iter().map(|s| (s.lang.as_str(), s.passages, s.pool_share, s.top, s.top_share)).collect::<Vec<_>>(),
            vec![("en", 3, 0.6, 1, 0.5), ("de", 2, 0.4, 1, 0.5)]
        );
        // Group g: German passages 1 (rank 3) and 3 (rank 2, the German version taken), English 4.
        let (ranks, distance) = group_ranks(&c, &r, "g").unwrap();
        assert_eq!(
            ranks.iter().map(|g| (g.passage, g.lang.as_str(), g.rank)).collect::<Vec<_>>(),
            vec![(3, "de", 2), (4, "en", 5)]
        );
        assert_eq!(distance, 3);
        assert!(group_ranks(&c, &r, "h").is_err());

        let mut t = BiasTable::default();
        t.add("en", &s);
        let r2 = rank(&c, &[-1.0, 0.0]).unwrap();
        t.add("en", &shares(&c, &r2, 2));
        t.add("de", &s);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].queries, 2);
        // Second query: top 2 are passages 4 (en) and 0 (en): en 1.0, de 0.0; means 0.75 and 0.25.
        assert_eq!(t.rows[0].mean_top_share, vec![("en".to_string(), 0.75), ("de".to_string(), 0.25)]);
    }
}
