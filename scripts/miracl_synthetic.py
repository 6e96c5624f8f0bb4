#!/usr/bin/env python3
"""Writes a small synthetic corpus in MIRACL's format, for testing `mlr retrieve` without the real one.

Two kinds (Python's standard library only, deterministic for a given --seed):

  xquad (default): passages are the sentences of XQuAD-R paragraphs (data/xquad-r/<lang>.json), one
    passage per sentence, docid `<article>#<sentence>` as MIRACL's `<wikipedia id>#<passage>`, title
    the article's title; plus random distractor passages (words of the same file in random order).
    Topics are questions of those paragraphs (`qid<TAB>question`, numeric qids as MIRACL's) and the
    qrels are graded: 2 for the sentence that holds the answer, 1 for the other sentences of its
    paragraph, 0 for a few sentences of other paragraphs (judged non-relevant).

  miracl (--miracl-lang sw): the real topics and qrels of data/miracl are used as they are; the
    corpus holds one passage for every docid the qrels judge (a relevant passage's text is the query
    it answers, a non-relevant one's another query's words), plus distractors. `mlr retrieve` on it
    checks that the real files parse and join with a corpus by their docids.

Files written under --out: corpus/docs-00.jsonl (plain) and corpus/docs-01.jsonl.gz (gzip) with the
passages in a shuffled order, and for xquad topics.tsv and qrels.tsv.

Usage:
  miracl_synthetic.py --out DIR [--lang de] [--questions 40] [--distractors 120] [--seed 27]
  miracl_synthetic.py --out DIR --miracl-lang sw [--miracl-dir data/miracl] [--distractors 200]
"""

import argparse
import gzip
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_corpus(out, passages, rng):
    """Shuffles `passages` ({"docid", "title", "text"}) and writes half plain, half gzip."""
    passages = list(passages)
    rng.shuffle(passages)
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    half = len(passages) // 2
    lines = [json.dumps(p, ensure_ascii=False) + "\n" for p in passages]
    (corpus / "docs-00.jsonl").write_text("".join(lines[:half]), encoding="utf-8")
    # mtime=0 and no file name in the header: the same bytes on every run.
    with open(corpus / "docs-01.jsonl.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write("".join(lines[half:]).encode("utf-8"))
    return len(passages)


def distractors(words, n, rng, first_id=990000000):
    out = []
    for i in range(n):
        article = first_id + i // 3
        title = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
        out.append({"docid": f"{article}#{i % 3}", "title": title, "text": text})
    return out


def answer_sentence(breaks, start):
    for i, (lo, hi) in enumerate(breaks):
        if lo <= start < hi or (i + 1 < len(breaks) and hi <= start < breaks[i + 1][0]):
            return i
    return len(breaks) - 1


def xquad(args, rng):
    data = json.loads((ROOT / "data/xquad-r" / f"{args.lang}.json").read_text(encoding="utf-8"))["data"]
    # Every (article, paragraph, question), articles numbered from 1000 as Wikipedia ids.
    candidates = []
    sentence_ids = {}  # (article, paragraph) -> docids of its sentences
    words = []
    for a, article in enumerate(data):
        n = 0
        for p, para in enumerate(article["paragraphs"]):
            sentence_ids[(a, p)] = [f"{1000 + a}#{n + i}" for i in range(len(para["sentences"]))]
            n += len(para["sentences"])
            words.extend(w for s in para["sentences"] for w in s.split())
            for qa in para["qas"]:
                candidates.append((a, p, qa))
    chosen = rng.sample(candidates, args.questions)
    chosen.sort(key=lambda c: (c[0], c[1], c[2]["id"]))
    paragraphs = sorted({(a, p) for a, p, _ in chosen})
    passages = []
    for a, p in paragraphs:
        article = data[a]
        title = article["title"].replace("_", " ")
        for docid, sentence in zip(sentence_ids[(a, p)], article["paragraphs"][p]["sentences"]):
            passages.append({"docid": docid, "title": title, "text": sentence})
    all_judgeable = [d for ids in (sentence_ids[k] for k in paragraphs) for d in ids]
    topics, qrels = [], []
    for q, (a, p, qa) in enumerate(chosen):
        qid = str(3 * q + 1)
        question = " ".join(qa["question"].split())
        topics.append(f"{qid}\t{question}\n")
        para = data[a]["paragraphs"][p]
        ids = sentence_ids[(a, p)]
        answer = answer_sentence(para["sentence_breaks"], qa["answers"][0]["answer_start"])
        judged = {ids[answer]: 2}
        for i, d in enumerate(ids):
            judged.setdefault(d, 1 if i != answer else 2)
        others = [d for d in all_judgeable if d not in judged]
        for d in rng.sample(others, min(3, len(others))):
            judged[d] = 0
        qrels.extend(f"{qid}\tQ0\t{d}\t{r}\n" for d, r in judged.items())
    passages += distractors(words, args.distractors, rng)
    n = write_corpus(args.out, passages, rng)
    (args.out / "topics.tsv").write_text("".join(topics), encoding="utf-8")
    (args.out / "qrels.tsv").write_text("".join(qrels), encoding="utf-8")
    print(f"{args.out}: {n} passages ({args.distractors} distractors), {len(topics)} topics, "
          f"{len(qrels)} judgements from data/xquad-r/{args.lang}.json")


def miracl(args, rng):
    lang = args.miracl_lang
    topics_path = args.miracl_dir / f"topics.miracl-v1.0-{lang}-dev.tsv"
    qrels_path = args.miracl_dir / f"qrels.miracl-v1.0-{lang}-dev.tsv"
    topics = {}
    for line in topics_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, query = line.split("\t", 1)
            topics[qid] = query
    judged = {}  # docid -> (qid, rel) of its first relevant judgement, else its first judgement
    for line in qrels_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, _, docid, rel = line.split()
            if docid not in judged or (int(rel) > 0 and judged[docid][1] <= 0):
                judged[docid] = (qid, int(rel))
    qids = sorted(topics)
    words = [w for q in topics.values() for w in q.split()]
    passages = []
    for docid, (qid, rel) in sorted(judged.items()):
        if rel > 0 and qid in topics:
            text = topics[qid]
        else:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 10)))
        passages.append({"docid": docid, "title": "", "text": text})
    passages += distractors(words, args.distractors, rng)
    n = write_corpus(args.out, passages, rng)
    print(f"{args.out}: {n} passages ({len(judged)} judged by {qrels_path.name}, {args.distractors} distractors) "
          f"for the {len(qids)} topics of {topics_path.name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--lang", default="de", help="XQuAD-R language (xquad kind)")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--distractors", type=int, default=120)
    ap.add_argument("--miracl-lang", help="use the real topics and qrels of this MIRACL language")
    ap.add_argument("--miracl-dir", type=Path, default=ROOT / "data/miracl")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.miracl_lang:
        miracl(args, rng)
    else:
        xquad(args, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
