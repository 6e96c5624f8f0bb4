//! Fuzz targets of your own documents (see mlr-fuzz): files in every format the page opens, read,
//! split and given languages; and the collection file (`.mlrc`) a user imports, followed through
//! search and the bias view.

use mlr_docs::collection::ModelRef;
use mlr_docs::read::Format;
use mlr_docs::search::{group_ranks, rank, shares, top};
use mlr_docs::Collection;
use mlr_fuzz::{binary, check, text};

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

const DIM: usize = 32;

/// A token per word, as a stand-in for the tokenizer.
fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

fn formats() -> [(&'static str, Format); 5] {
    [
        ("a.txt", Format::Text),
        ("a.md", Format::Markdown),
        ("a.jsonl", Format::JsonLines),
        ("a.csv", Format::Csv { column: None, tab: false }),
        ("a.tsv", Format::Csv { column: Some("body".into()), tab: true }),
    ]
}

fn seeds() -> Vec<String> {
    vec![
        "# Chicago\n\nThe university was founded in 1890. It lies in Hyde Park.\n\n```\ncode\n```\n\nDie Universität wurde 1890 gegründet. 芝加哥大学创立于1890年。".into(),
        "{\"text\": \"Hello world, this is a line.\", \"id\": 1, \"lang\": \"en\", \"group\": \"g\"}\n\"Bonjour le monde.\"\n{\"text\": \"Hallo Welt.\", \"group\": \"g\"}\n".into(),
        "id,text,lang,group\n1,\"The first row, quoted\",en,g1\n2,Die zweite Zeile,de,g1\n3,\"multi\nline\",,\n".into(),
        "id\tbody\tlang\n1\tประเทศไทยมีประชากรมาก\tth\n2\tTürkiye'nin başkenti Ankara'dır.\t\n".into(),
    ]
}

/// A collection of the seeds with made-up unit vectors, part of it embedded.
fn collection_seed() -> Vec<u8> {
    let model = ModelRef { name: "e5-small".into(), key: "k".into(), dim: DIM };
    let mut c = Collection::new("fuzz", model, "2026-12-07T00:00:00Z", 8);
    // The seeds are, in order, Markdown, JSON lines, CSV and TSV.
    for ((name, format), seed) in formats()[1..].iter().zip(seeds()) {
        c.add_file(name, seed.as_bytes(), format, &mut words).expect("the seeds read");
    }
    c.order_for_embedding();
    c.mark_translations(&[0, 2]).expect("two passages");
    let rows: Vec<f32> =
        (0..c.passages.len() - 1).flat_map(|r| (0..DIM).map(move |d| if d == r % DIM { 1.0 } else { 0.0 })).collect();
    c.push_vectors(&rows).expect("unit rows");
    c.encode()
}

#[test]
fn files() {
    check("docs files", text(seeds(), 512), |bytes| {
        let mut accepted = false;
        for (name, format) in formats() {
            let model = ModelRef { name: "m".into(), key: "k".into(), dim: DIM };
            let mut c = Collection::new("f", model, "now", 8);
            let Ok(added) = c.add_file(name, bytes, &format, &mut words) else { continue };
            accepted = true;
            if added.passages == 0 || added.passages != c.passages.len() || added.skipped.len() > added.skipped_count {
                return Err(format!("{name}: {} passages added, {} held", added.passages, c.passages.len()).into());
            }
            for p in &c.passages {
                if p.text.trim().is_empty() || p.text != p.text.trim() || p.part == 0 {
                    return Err(format!("{name}: a passage {:?} (part {})", p.text, p.part).into());
                }
                if p.lang.is_empty() || !p.lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(format!("{name}: language {:?}", p.lang).into());
                }
            }
            // What is read writes and reads back.
            let back = Collection::decode(&c.encode()).map_err(|e| format!("{name}: {e}"))?;
            if back != c {
                return Err(format!("{name}: the collection does not survive its file").into());
            }
        }
        Ok(accepted)
    });
}

#[test]
fn collection_file() {
    check("docs collection", binary(vec![collection_seed()], 256), |bytes| {
        let Ok(c) = Collection::decode(bytes) else { return Ok(false) };
        if c.embedded() > c.passages.len() || c.vectors.iter().any(|x| !x.is_finite()) {
            return Err(
                format!("{} rows for {} passages, or a non-finite value", c.embedded(), c.passages.len()).into()
            );
        }
        if c.passages.iter().any(|p| p.source >= c.sources.len()) {
            return Err("a passage of a file not listed".into());
        }
        if c.embedded() == 0 {
            return Ok(true);
        }
        // What the page does with an imported collection: search, shares, translation groups.
        let query: Vec<f32> = (0..c.model.dim).map(|d| if d == 0 { 1.0 } else { 0.0 }).collect();
        let ranking = rank(&c, &query).map_err(|e| e.to_string())?;
        if ranking.scores.iter().any(|s| !s.is_finite()) {
            return Err("a non-finite score".into());
        }
        for (k, lang) in [(10, None), (0, None), (usize::MAX, None), (3, Some("en")), (3, Some("xx"))] {
            let _ = top(&c, &ranking, k, lang);
        }
        for s in shares(&c, &ranking, 10) {
            if !(0.0..=1.0).contains(&s.pool_share) || !(0.0..=1.0).contains(&s.top_share) {
                return Err(format!("language {}: shares {} and {}", s.lang, s.pool_share, s.top_share).into());
            }
        }
        for (key, _) in c.groups() {
            let (ranks, distance) = group_ranks(&c, &ranking, &key).map_err(|e| e.to_string())?;
            if distance >= c.embedded().max(1) || ranks.iter().any(|r| r.rank == 0 || r.rank > c.embedded()) {
                return Err(format!("group {key}: ranks {ranks:?}, distance {distance}").into());
            }
        }
        Ok(true)
    });
}
