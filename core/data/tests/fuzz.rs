//! Fuzz targets of mlr-data's readers (see mlr-fuzz): LAReQA files, `split.json`, JSON lines and
//! bitext training sources, Tatoeba, and the sampler state a checkpoint stores.

use mlr_data::batches::{PairText, ParallelPairs, Strategy};
use mlr_data::lareqa::{ArticleSplit, CandidateText, LareqaSet, Split};
use mlr_data::mix::{MixState, MixedSampler};
use mlr_data::sources::{bitext_langs, parse_bitext, parse_jsonl, Source, SourceKind};
use mlr_data::tatoeba;
use mlr_fuzz::proptest::prelude::{prop_oneof, Just};
use mlr_fuzz::proptest::sample::select;
use mlr_fuzz::{check, seeds, text, Bytes, Violation};
use serde_json::json;

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

fn invariants(set: &LareqaSet) -> Result<(), Violation> {
    for c in &set.candidates {
        let p = set.paragraphs.get(c.paragraph).ok_or("candidate outside the paragraphs")?;
        if c.lang >= set.langs.len() || p.lang != c.lang || p.article >= set.articles.len() {
            return Err(format!("candidate {} points at the wrong language or article", c.id).into());
        }
    }
    for q in &set.questions {
        let answer = set.candidates.get(q.answer).ok_or("answer outside the candidates")?;
        if answer.lang != q.lang {
            return Err(format!("question {} is answered in another language", q.id).into());
        }
    }
    let mut ids: Vec<&str> = set.candidates.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err("two candidates share an id".into());
    }
    for max in [None, Some(1)] {
        let index = set.eval_index(max);
        let n = index.questions.len();
        if [index.question_ids.len(), index.query_lang.len(), index.query_group.len(), index.relevant.len()]
            .iter()
            .any(|&l| l != n)
            || index.relevant.iter().flatten().any(|&c| c >= set.candidates.len())
        {
            return Err("the evaluation index is inconsistent".into());
        }
    }
    (0..set.candidates.len()).for_each(|i| drop(set.candidate_text(i, CandidateText::SentenceContext)));
    let langs: Vec<&str> = set.langs.iter().rev().map(String::as_str).collect();
    invariants_once(&set.restrict_langs(&langs).map_err(|e| e.to_string())?)?;
    let split =
        ArticleSplit { rule: String::new(), train: vec!["Alpha".into()], dev: vec![], test: vec!["Beta".into()] };
    invariants_once(&set.split(&split, Split::Test))?;
    ParallelPairs::from_lareqa(set, &langs).map_err(|e| format!("from_lareqa: {e}"))?;
    Ok(())
}

/// The index invariants of a derived set (without deriving further).
fn invariants_once(set: &LareqaSet) -> Result<(), Violation> {
    let ok = set.candidates.iter().all(|c| c.paragraph < set.paragraphs.len() && c.lang < set.langs.len())
        && set.questions.iter().all(|q| q.answer < set.candidates.len())
        && set.paragraphs.iter().all(|p| p.article < set.articles.len());
    ok.then_some(()).ok_or_else(|| "a derived set has an index out of range".into())
}

#[test]
fn lareqa_files() {
    let seeds = vec![seeds::lareqa("en"), seeds::lareqa("de")];
    // The second file is left whole half of the time, so that the first one's damage is what decides.
    let de = prop_oneof![Just(Bytes(seeds[1].clone().into_bytes())), text(seeds.clone(), 512)];
    let strategy = (text(seeds, 512), de);
    check("lareqa json", strategy, |(en, de)| {
        let files: [(&str, &str, &[u8]); 2] = [("en", "en.json", en), ("de", "de.json", de)];
        match LareqaSet::from_files(&files) {
            Ok(set) => invariants(&set).map(|()| true),
            Err(_) => Ok(false),
        }
    });
}

#[test]
fn article_split() {
    let seed = json!({"rule": "by title", "train": ["Alpha"], "dev": ["Gamma"], "test": ["Beta", "Delta"]});
    check("split json", text(vec![seed.to_string()], 256), |bytes| {
        let Ok(split) = ArticleSplit::from_json(bytes, "split.json") else { return Ok(false) };
        let mut all: Vec<&String> = split.train.iter().chain(&split.dev).chain(&split.test).collect();
        all.sort_unstable();
        match all.windows(2).any(|w| w[0] == w[1]) {
            true => Err("a title in two parts".into()),
            false => Ok(true),
        }
    });
}

fn pairs_invariants(p: &ParallelPairs, bitext: bool) -> Result<(), Violation> {
    if p.ids.len() != p.groups.len() || p.groups.is_empty() {
        return Err(format!("{} ids for {} groups", p.ids.len(), p.groups.len()).into());
    }
    for (g, group) in p.groups.iter().enumerate() {
        if group.len() != p.langs.len() || group.iter().all(Option::is_none) {
            return Err(
                format!("group {g} has {} slots for {} languages, or none filled", group.len(), p.langs.len()).into()
            );
        }
        if bitext && group.iter().any(Option::is_none) {
            return Err(format!("bitext group {g} lacks a side").into());
        }
        let texts =
            group.iter().flatten().flat_map(|t| [&t.question, &t.answer].into_iter().chain(&t.paragraph_others));
        if texts.into_iter().any(|t| t.trim().is_empty()) {
            return Err(format!("group {g} has an empty text").into());
        }
    }
    let size = p.groups.iter().flatten().filter(|t| t.is_some()).count();
    if p.size() != size {
        return Err(format!("size {} but {size} rows", p.size()).into());
    }
    let first = p.langs.first().map(String::as_str).unwrap_or_default();
    let kept = p.restrict_langs(&[first, "zz"]);
    if kept.langs.len() > 1 || kept.groups.iter().any(|g| g.len() != kept.langs.len()) {
        return Err("restrict_langs kept the wrong languages".into());
    }
    Ok(())
}

#[test]
fn json_lines() {
    let seed = [
        json!({"group": "q1", "lang": "de", "query": "Wer?", "passage": "Er.", "negatives": ["Sie.", "Es."]}),
        json!({"group": "q1", "lang": "en", "query": "Who?", "passage": "He."}),
        json!({"group": 7, "lang": "en", "query": "Where?", "passage": "There."}),
        json!({"group": "q3", "lang": "zh", "query": "谁？", "passage": "他。"}),
    ]
    .map(|row| row.to_string())
    .join("\n");
    check("json lines", text(vec![seed.clone(), seed.replace('\n', "\n\n")], 512), |bytes| {
        match parse_jsonl(&bytes.lossy(), "pairs.jsonl") {
            Ok(p) => pairs_invariants(&p, false).map(|()| true),
            Err(_) => Ok(false),
        }
    });
}

#[test]
fn bitext_and_tatoeba() {
    let de = "Ich bin hier.\nDas ist gut.\nWo ist es?\n".to_string();
    let en = "I am here.\nThat is good.\nWhere is it?\n".to_string();
    let langs = select(&["de", "en", "", "de-en", " "][..]);
    let strategy = (langs.clone(), text(vec![de.clone(), en.clone()], 128), langs, text(vec![en, de], 128));
    check("bitext", strategy, |(lang_a, a, lang_b, b)| {
        let (a, b) = (a.lossy(), b.lossy());
        let bitext = parse_bitext(lang_a, &a, lang_b, &b, "tatoeba.de-en");
        if let Ok(p) = &bitext {
            pairs_invariants(p, true)?;
        }
        if let Ok(t) = tatoeba::parse(lang_a, &a, &b, "tatoeba.deu-eng") {
            if t.other.len() != t.english.len() || t.other.is_empty() {
                return Err(format!("{} lines against {}", t.other.len(), t.english.len()).into());
            }
        }
        match bitext_langs(&a) {
            Some((x, y)) if x == y || x.is_empty() || y.is_empty() => {
                Err(format!("bitext_langs gave {x:?}, {y:?}").into())
            }
            _ => Ok(bitext.is_ok()),
        }
    });
}

/// `n` groups in languages `a` and `b` (every third only in `a`), with hard negatives.
fn source(name: &str, n: usize, a: &str, b: &str) -> Source {
    let text = |g: usize, l: &str| PairText {
        question: format!("{name} q{g} {l}"),
        answer: format!("{name} a{g} {l}"),
        paragraph_others: (0..g % 3).map(|k| format!("{name} o{g} {l} {k}")).collect(),
    };
    let groups = (0..n).map(|g| vec![Some(text(g, a)), (g % 3 != 0).then(|| text(g, b))]).collect();
    let pairs =
        ParallelPairs { langs: vec![a.into(), b.into()], ids: (0..n).map(|g| format!("g{g}")).collect(), groups };
    Source { name: name.into(), kind: SourceKind::JsonLines, pairs }
}

#[test]
fn checkpoint_sampler_state() {
    let one = vec![source("x", 12, "de", "en")];
    let two = vec![source("x", 12, "de", "en"), source("y", 7, "en", "zh")];
    let sampler = |sources: &[Source]| {
        MixedSampler::new(sources, Strategy::Hybrid { alpha: 0.5 }, 4, true, 9, None).expect("a valid sampler")
    };
    // Seeds: states after a few batches, as a checkpoint stores them.
    let seeds: Vec<String> = [&one, &two]
        .map(|sources| {
            let mut s = sampler(sources);
            (0..5).for_each(|_| drop(s.next_batch()));
            serde_json::to_string_pretty(&s.state()).expect("serialises")
        })
        .to_vec();
    let strategy = (text(seeds, 256), select(vec![one, two]));
    check("checkpoint sampler state", strategy, |(bytes, sources)| {
        let Ok(state) = serde_json::from_slice::<MixState>(bytes) else { return Ok(false) };
        let mut s = sampler(sources);
        if s.restore(state).is_err() {
            return Ok(false);
        }
        for _ in 0..3 {
            let batch = s.next_batch();
            let pairs = &sources.get(batch.source).ok_or("batch from no source")?.pairs;
            for item in &batch.items {
                let group = pairs.groups.get(item.group).ok_or("item outside the groups")?;
                let text = group.get(item.passage_lang).and_then(Option::as_ref).ok_or("passage language missing")?;
                group.get(item.query_lang).and_then(Option::as_ref).ok_or("query language missing")?;
                if item.hard_negative.is_some_and(|k| k >= text.paragraph_others.len()) {
                    return Err("hard negative outside the paragraph".into());
                }
            }
        }
        Ok(true)
    });
}
