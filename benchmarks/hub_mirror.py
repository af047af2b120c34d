"""A model-hub-like mirror: files shaped like what hubs and artifact stores really hold.

The "small" mirror in bench_bulk.py is mostly toy files (1-6 tensors, short pickles), where any
scanner's cost is its fixed per-file overhead. Real checkpoints hold hundreds of tensors (one
pickle record and one zip member each), optimizer state doubles that, tokenizers carry 30-50k
vocab entries, and scikit-learn forests pickle thousands of objects. Tensor dimensions here are
tiny so the mirror stays small on disk; the pickle streams have realistic size and structure.

Every file is written by the real library (torch, scikit-learn, joblib, numpy, pandas); the few
malicious samples are hand-assembled pickles with a harmless `echo` payload.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def transformer_state(layers: int, dim: int = 4, bias: bool = True) -> dict[str, Any]:
    import torch

    sd: dict[str, Any] = OrderedDict()
    sd["model.embed_tokens.weight"] = torch.zeros(8, dim)
    for i in range(layers):
        pre = f"model.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[f"{pre}.self_attn.{proj}.weight"] = torch.randn(dim, dim)
            if bias:
                sd[f"{pre}.self_attn.{proj}.bias"] = torch.zeros(dim)
        for proj in ("gate_proj", "up_proj", "down_proj"):
            sd[f"{pre}.mlp.{proj}.weight"] = torch.randn(dim, dim)
        sd[f"{pre}.input_layernorm.weight"] = torch.ones(dim)
        sd[f"{pre}.post_attention_layernorm.weight"] = torch.ones(dim)
    sd["model.norm.weight"] = torch.ones(dim)
    sd["lm_head.weight"] = torch.zeros(8, dim)
    return sd


def resnet_state(blocks: int, dim: int = 4) -> dict[str, Any]:
    import torch

    sd: dict[str, Any] = OrderedDict()
    for i in range(blocks):
        for j in (1, 2, 3):
            pre = f"layer{i // 4 + 1}.{i % 4}"
            sd[f"{pre}.conv{j}.weight"] = torch.randn(dim, dim, 1, 1)
            sd[f"{pre}.bn{j}.weight"] = torch.ones(dim)
            sd[f"{pre}.bn{j}.bias"] = torch.zeros(dim)
            sd[f"{pre}.bn{j}.running_mean"] = torch.zeros(dim)
            sd[f"{pre}.bn{j}.running_var"] = torch.ones(dim)
            sd[f"{pre}.bn{j}.num_batches_tracked"] = torch.tensor(0)
    sd["fc.weight"] = torch.zeros(10, dim)
    sd["fc.bias"] = torch.zeros(10)
    return sd


def training_checkpoint(sd: dict[str, Any], epoch: int) -> dict[str, Any]:
    """What `torch.save({...})` of a training loop holds: weights, Adam state, bookkeeping."""
    import torch

    params = list(sd)
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.AdamW(model.parameters())
    state = {
        i: {"step": torch.tensor(float(epoch)), "exp_avg": v.clone(), "exp_avg_sq": v.clone()}
        for i, v in enumerate(sd.values())
    }
    group = {**opt.state_dict()["param_groups"][0], "params": list(range(len(params)))}
    return {
        "epoch": epoch,
        "global_step": epoch * 1000,
        "model_state_dict": sd,
        "optimizer_state_dict": {"state": state, "param_groups": [group]},
        "best_metric": 0.5 + epoch / 100,
    }


def sklearn_models(rng: random.Random) -> list[Any]:
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).standard_normal((200, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    out: list[Any] = []
    for k in range(3):
        out.append(RandomForestClassifier(n_estimators=20 + 20 * k, random_state=k).fit(X, y))
        out.append(GradientBoostingClassifier(n_estimators=30 + 30 * k, random_state=k).fit(X, y))
        out.append(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y))
    rng.shuffle(out)
    return out


def _malicious_pickle(payload: str = "echo fastscan-bench") -> bytes:
    arg = payload.encode()
    return (
        b"\x80\x02cos\nsystem\nq\x00X"
        + len(arg).to_bytes(4, "little")
        + arg
        + b"q\x01\x85q\x02Rq\x03."
    )


def build_hub_mirror(root: Path, files: int, seed: int = 0) -> None:
    import io
    import zipfile

    import joblib
    import numpy as np
    import pandas as pd
    import torch

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    forests = sklearn_models(rng)
    vocab_sizes = (30522, 32000, 50257)
    for i in range(files):
        folder = root / f"org{i % 41}" / f"repo{i % 13}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 20
        if kind < 6:  # weights: transformer or CNN, new zip or legacy format
            sd = transformer_state(rng.randint(6, 32)) if kind % 2 else resnet_state(16)
            legacy = kind in (4, 5)
            name = "pytorch_model.bin" if legacy else "model.pt"
            torch.save(sd, folder / f"{i}_{name}", _use_new_zipfile_serialization=not legacy)
        elif kind < 8:  # training checkpoints with optimizer state
            sd = transformer_state(rng.randint(4, 16))
            torch.save(training_checkpoint(sd, i % 50), folder / f"{i}_checkpoint.ckpt")
        elif kind < 10:  # tokenizer vocabularies
            vocab = {f"tok_{j}_{i % 7}": j for j in range(vocab_sizes[i % 3])}
            (folder / f"{i}_vocab.pkl").write_bytes(pickle.dumps(vocab, protocol=4))
        elif kind < 12:  # scikit-learn models
            model = forests[i % len(forests)]
            if kind == 10:
                (folder / f"{i}_model.pkl").write_bytes(pickle.dumps(model, protocol=5))
            else:
                joblib.dump(model, folder / f"{i}_model.joblib", compress=rng.choice([0, 3]))
        elif kind == 12:  # dataframes
            df = pd.DataFrame(
                {"x": nrng.standard_normal(500), "label": [f"c{j % 9}" for j in range(500)]}
            )
            df.to_pickle(folder / f"{i}_features.pkl")
        elif kind == 13:
            np.save(folder / f"{i}_embeddings.npy", nrng.standard_normal((64, 32)))
        elif kind == 14:
            np.savez(folder / f"{i}_arrays.npz", a=nrng.standard_normal(100), b=np.arange(50))
        elif kind in (15, 16):
            cfg = {"hidden_size": 4096, "num_hidden_layers": 32, "vocab_size": 32000}
            (folder / f"{i}_config.json").write_text(json.dumps(cfg))
        elif kind == 17:
            (folder / f"{i}_README.md").write_text("# model card\n" * rng.randint(5, 200))
        elif kind == 18 and i % 200 == 18:
            (folder / f"{i}_evil.pkl").write_bytes(_malicious_pickle())
        elif kind == 19 and i % 200 == 19:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("archive/data.pkl", _malicious_pickle())
                zf.writestr("archive/version", "3\n")
            (folder / f"{i}_evil.pt").write_bytes(buf.getvalue())
        else:  # whole models of standard torch modules
            net = torch.nn.Sequential(
                *[torch.nn.Linear(4, 4) for _ in range(rng.randint(2, 12))], torch.nn.ReLU()
            )
            torch.save(net, folder / f"{i}_model.pth")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    build_hub_mirror(args.root, args.files, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
