"""The training benchmark's peer: sentence-transformers on PyTorch (CPU), trained on the same batches
as mlr (`mlr-bench train` writes them), as a researcher would otherwise do it.

MultipleNegativesRankingLoss with scale 20 (InfoNCE at tau 0.05 over in-batch negatives), AdamW at
lr 3e-5 and weight decay 0.01 with one warm-up step (mlr's schedule for this run), gradient norm
clipped at 1, word embeddings frozen, dropout 0 (the model in eval mode, as mlr's encoder has no
dropout), 2 threads; queries and passages carry E5's "query: " / "passage: " prefixes and are
truncated to the same token counts (special tokens included). One untimed warm-up step.

Before training it embeds the first batch's texts and compares them with mlr's vectors of the same
base model (written by `mlr-bench train` beside the batches): the minimum cosine is reported.

Run with the venv of scripts/setup_st.sh, USE_HUB_KERNELS=0 HF_HUB_OFFLINE=1.
"""

import argparse
import json
import os
import resource
import shutil
import tempfile
import time


def st_layout(model_dir, out):
    """A sentence-transformers view of an HF BERT directory: its files linked, plus mean pooling,
    Normalize, and the fast tokenizer over tokenizer.json as it is."""
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        os.symlink(os.path.abspath(os.path.join(model_dir, name)), os.path.join(out, name))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    with open(os.path.join(out, "modules.json"), "w") as f:
        json.dump(modules, f)
    os.makedirs(os.path.join(out, "1_Pooling"))
    os.makedirs(os.path.join(out, "2_Normalize"))
    with open(os.path.join(out, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": json.load(open(os.path.join(model_dir, "config.json")))["hidden_size"],
                   "pooling_mode_mean_tokens": True}, f)
    with open(os.path.join(out, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 512, "do_lower_case": False}, f)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        # The fast tokenizer over tokenizer.json as it is; transformers only pads with a named pad
        # token, so XLM-R's special tokens are named here (their ids come from tokenizer.json).
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
                   "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                   "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batches", required=True)
    ap.add_argument("--max-query-tokens", type=int, required=True)
    ap.add_argument("--max-passage-tokens", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer, losses

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = json.load(open(args.batches))
    tmp = tempfile.mkdtemp(prefix="mlr-st-")
    try:
        st_layout(args.model, tmp)
        model = SentenceTransformer(tmp, device="cpu")
        model.eval()  # dropout 0; autograd still runs

        # The embedding check, at the model's full length (mlr's default).
        check = data["check"]
        mins = []
        for texts, prefix, key in ((check["queries"], "query: ", "query_vectors"), (check["passages"], "passage: ", "passage_vectors")):
            with torch.no_grad():
                ours = model.encode([prefix + t for t in texts], convert_to_numpy=True, normalize_embeddings=True)
            theirs = np.asarray(check[key], dtype=np.float32)
            theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
            mins.append(float((ours * theirs).sum(axis=1).min()))

        model[0].auto_model.embeddings.word_embeddings.weight.requires_grad_(False)
        loss_fn = losses.MultipleNegativesRankingLoss(model, scale=20.0)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=3e-5, weight_decay=0.01, eps=1e-8)
        total = len(data["batches"])

        def features(texts, prefix, max_tokens):
            model.max_seq_length = max_tokens
            return model.tokenize([prefix + t for t in texts])

        times, loss_values = [], []
        for step, batch in enumerate(data["batches"]):
            t0 = time.perf_counter()
            # mlr's schedule: linear warm-up over 1 step, then linear decay to 0 at the end.
            lr = 3e-5 * (1.0 if step == 0 else (total - step) / max(total - 1, 1))
            for g in opt.param_groups:
                g["lr"] = lr
            q = features(batch["queries"], "query: ", args.max_query_tokens)
            p = features(batch["passages"], "passage: ", args.max_passage_tokens)
            loss = loss_fn([q, p], None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            secs = time.perf_counter() - t0
            print(f"  sentence-transformers: step {step + 1}: {secs:.2f} s, loss {loss.item():.4f}", flush=True)
            if step > 0:
                times.append(secs)
            loss_values.append(loss.item())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out = {
        "step_times_s": times,
        "losses": loss_values,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "embedding_check": f"min cosine {min(mins):.7f} over {len(check['queries']) + len(check['passages'])} texts",
        "versions": {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "threads": args.threads},
    }
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
