"""Check of the curvature implementation against the Fast-DetectGPT paper: separate text sampled from
SmolLM2-135M-Instruct from human-written text with `workers.ml.fingerprint.curvature_scores`, white-box
(the scoring model is the sampling model), as in the paper's white-box setting (AUROC 0.9887 on average
over five source models, on 150-200-token news/QA/story passages).

Human texts: a seeded sample of the held-out reference corpus paragraphs (`workers/ml/reference_corpus.txt`,
written by people; 45-65 SmolLM2 tokens each). Generated texts: the same paragraph's first
`PROMPT_TOKENS` tokens, continued by the model with plain sampling (temperature 1, no top-k/top-p, seeded)
for exactly as many tokens as the human paragraph has after the prompt, so both sides have equal length
and share their opening. Both are scored in full.
"""

from __future__ import annotations

import time

import torch

from workers.ml.fingerprint import auroc, curvature_scores
from workers.ml.models import SMOLLM2, BaseModel, load_base_model, reference_corpus
from workers.ml.seeds import HashRng, derive_int_seed, derive_seed

PROMPT_TOKENS = 12
GENERATED_SEED = 0  # any fixed root; sub-seeds are derived per sample


def generated_vs_human(samples: int, base: BaseModel | None = None, device=None) -> dict:
    if samples <= 0:
        return {"auroc": None, "reason": "skipped (--generated-samples 0)"}
    started = time.perf_counter()
    try:
        model = base if base is not None and base.name == SMOLLM2 else load_base_model(SMOLLM2, device=device)
    except Exception as error:  # the figure is optional for `tiny`: report why it is missing
        return {"auroc": None, "reason": f"SmolLM2 could not be loaded: {type(error).__name__}: {error}"}
    load_seconds = time.perf_counter() - started

    tokenizer = model.tokenizer
    corpus = reference_corpus()
    chosen = HashRng(derive_seed(GENERATED_SEED, "bench-generated")).sample(corpus, min(samples, len(corpus)))
    human, generated = [], []
    started = time.perf_counter()
    device = model.device
    for index, text in enumerate(chosen):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        new_tokens = len(ids) - PROMPT_TOKENS
        prompt = torch.tensor([ids[:PROMPT_TOKENS]], device=device)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(derive_int_seed(GENERATED_SEED, "bench-generate", index))
            out = model.model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=tokenizer.eos_token_id,
            )
        human.append(text)
        generated.append(tokenizer.decode(out[0].tolist(), skip_special_tokens=True))
    generation_seconds = time.perf_counter() - started

    started = time.perf_counter()
    human_scores = curvature_scores(model, human)
    generated_scores = curvature_scores(model, generated)
    scoring_seconds = time.perf_counter() - started
    return {
        "auroc": round(auroc(generated_scores, human_scores), 4),
        "source_and_scoring_model": SMOLLM2,
        "samples_per_class": len(chosen),
        "prompt_tokens": PROMPT_TOKENS,
        "mean_tokens_per_text": round(
            sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in human) / len(human), 1
        ),
        "sampling": "temperature 1.0, no top-k/top-p, seeded per sample",
        "human_curvature_mean": round(sum(human_scores) / len(human_scores), 3),
        "generated_curvature_mean": round(sum(generated_scores) / len(generated_scores), 3),
        "paper_white_box_auroc": 0.9887,
        "seconds": {
            "load": round(load_seconds, 1),
            "generate": round(generation_seconds, 1),
            "score": round(scoring_seconds, 1),
        },
        "example_generated": generated[0][:300],
    }
