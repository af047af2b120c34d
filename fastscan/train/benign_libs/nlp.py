"""NLP: gensim, nltk, sklearn-crfsuite, spacy, thinc, transformers, tokenizers,
sentence-transformers. Every model is trained or built locally; nothing is downloaded."""

from __future__ import annotations

import contextlib
import importlib.util
import pickle
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ._base import WORDS, dump, sentences, size, source, torch_save, words


@source("gensim")
def gensim_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Word2Vec/FastText/LDA/Dictionary/TF-IDF/KeyedVectors saved with gensim's `.save()`."""
    from gensim import corpora, models

    texts = sentences(rng, size(rng, scale, 20, 80))
    kind = rng.choice(["w2v", "fasttext", "kv", "doc2vec", "lda", "dictionary", "tfidf"])
    common = {"vector_size": rng.randint(4, 16), "min_count": 1, "workers": 1, "epochs": 1,
              "seed": rng.randrange(1000)}  # fmt: skip
    if kind in ("w2v", "kv"):
        obj: Any = models.Word2Vec(texts, **common)
        obj = obj.wv if kind == "kv" else obj
    elif kind == "fasttext":
        obj = models.FastText(texts, min_n=2, max_n=3, bucket=64, **common)
    elif kind == "doc2vec":
        tagged = [models.doc2vec.TaggedDocument(t, [i]) for i, t in enumerate(texts)]
        obj = models.Doc2Vec(tagged, **common)
    else:
        dictionary = corpora.Dictionary(texts)
        bow = [dictionary.doc2bow(t) for t in texts]
        if kind == "lda":
            obj = models.LdaModel(bow, num_topics=2, id2word=dictionary, passes=1,
                                  random_state=rng.randrange(1000))  # fmt: skip
        else:
            obj = dictionary if kind == "dictionary" else models.TfidfModel(bow)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        obj.save(str(path), sep_limit=2**40)  # one file: arrays stay inside the pickle
        data = path.read_bytes()
    return data, rng.choice((".model", ".bin", ".pkl", ".gensim"))


@source("nltk")
def nltk_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """FreqDist, ConditionalFreqDist, an HMM tagger, NaiveBayes and Punkt trained locally."""
    from nltk import ConditionalFreqDist, FreqDist, NaiveBayesClassifier
    from nltk.tag import hmm
    from nltk.tag.sequential import UnigramTagger
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    texts = sentences(rng, size(rng, scale, 10, 60))
    tags = {w: rng.choice(["NN", "VB", "JJ"]) for w in WORDS}
    tagged = [[(w, tags[w]) for w in s] for s in texts]
    kind = rng.choice(["freq", "cfreq", "hmm", "bayes", "punkt", "unigram"])
    if kind == "freq":
        obj: Any = FreqDist(w for s in texts for w in s)
    elif kind == "cfreq":
        obj = ConditionalFreqDist((tags[w], w) for s in texts for w in s)
    elif kind == "hmm":  # its estimator is a lambda: users keep it with dill
        import dill

        tagger = hmm.HiddenMarkovModelTrainer().train_supervised(tagged)
        return dill.dumps(tagger, protocol=rng.randint(2, 5)), rng.choice((".pickle", ".dill"))
    elif kind == "bayes":
        feats = [({"first": s[0], "len": len(s)}, s[-1] in WORDS[:10]) for s in texts]
        obj = NaiveBayesClassifier.train(feats)
    elif kind == "punkt":
        trainer = PunktTrainer()
        trainer.train(" ".join(" ".join(s).capitalize() + "." for s in texts), finalize=True)
        obj = PunktSentenceTokenizer(trainer.get_params())
    else:
        obj = UnigramTagger(tagged)
    return dump(obj, rng, (".pickle", ".pkl"))


@source("sklearn-crfsuite", "sklearn_crfsuite", "pycrfsuite")
def crfsuite_taggers(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A CRF trained locally (its pickle carries the crfsuite model file as bytes)."""
    import sklearn_crfsuite

    texts = sentences(rng, size(rng, scale, 10, 40))
    X = [[{"w": w, "suffix": w[-2:]} for w in s] for s in texts]
    y = [[("N" if w in WORDS[:15] else "V") for w in s] for s in texts]
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", max_iterations=5)
    crf.fit(X, y)
    return dump(crf, rng, (".pkl", ".crf.pkl"))


@source("spacy")
def spacy_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A blank pipeline, its Vocab, or Docs, pickled (spaCy supports pickle for all three)."""
    import spacy

    nlp = spacy.blank(rng.choice(["en", "de", "xx"]))
    if rng.random() < 0.5:
        nlp.add_pipe("sentencizer")
    kind = rng.choice(["nlp", "vocab", "doc", "docs"])
    text = " ".join(words(rng, size(rng, scale, 5, 30))) + "."
    obj = {"nlp": nlp, "vocab": nlp.vocab, "doc": nlp(text), "docs": list(nlp.pipe([text] * 3))}
    return dump(obj[kind], rng, (".pkl", ".spacy.pkl"))


@source("thinc")
def thinc_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from thinc.api import Config, NumpyOps

    config = Config().from_str(
        f'[model]\n@layers = "Relu.v1"\nnO = {rng.randint(2, 64)}\ndropout = {rng.random():.2f}\n'
    )
    ops = NumpyOps()
    return dump({"config": config, "array": ops.alloc2f(2, rng.randint(1, 8))}, rng)


def _tiny_transformer(rng: random.Random) -> Any:
    import torch
    import transformers as tf

    torch.manual_seed(rng.randrange(2**31))
    hidden = rng.choice([16, 32])
    kw: dict[str, Any] = {"vocab_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
          "intermediate_size": 32, "max_position_embeddings": 32}  # fmt: skip
    kind = rng.choice(["bert", "gpt2", "distilbert", "t5"])
    if kind == "bert":
        return tf.BertForSequenceClassification(tf.BertConfig(hidden_size=hidden, **kw))
    if kind == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=64, n_embd=hidden, n_layer=1, n_head=2,
                                                n_positions=32))  # fmt: skip
    if kind == "distilbert":
        config = tf.DistilBertConfig(
            vocab_size=64, dim=hidden, n_layers=1, n_heads=2, hidden_dim=32
        )
        return tf.DistilBertModel(config)
    t5 = tf.T5Config(vocab_size=64, d_model=hidden, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    return tf.T5ForConditionalGeneration(t5)


@source("transformers", "transformers", "torch")
def transformers_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A tiny config-built model: torch.save of the whole model, pytorch_model.bin from
    save_pretrained(safe_serialization=False), a checkpoint with its config, or a pickled fast
    tokenizer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _tiny_transformer(rng)
        kind = rng.choice(["whole", "bin", "checkpoint", "tokenizer"])
        if kind == "tokenizer" and importlib.util.find_spec("tokenizers"):
            import transformers as tf

            fast = tf.PreTrainedTokenizerFast(tokenizer_object=_tokenizer(rng), unk_token="[UNK]")
            return dump(fast, rng, (".pkl", ".tokenizer.pkl"))
        if kind == "whole":
            return torch_save(model, rng)
        if kind == "checkpoint":
            return torch_save({"model": model.state_dict(), "config": model.config,
                               "step": rng.randrange(10**5)}, rng)  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            with contextlib.suppress(TypeError):  # releases without the flag
                model.save_pretrained(tmp, safe_serialization=False)
            bins = sorted(Path(tmp).glob("*.bin"))
            if bins:
                return bins[0].read_bytes(), ".bin"
        # what save_pretrained(safe_serialization=False) writes: the state dict, zip format
        data, _ = torch_save(model.state_dict(), rng, legacy=False)
        return data, ".bin"


def _tokenizer(rng: random.Random) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", *sorted(set(WORDS))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


@source("tokenizers")
def tokenizers_objects(rng: random.Random, scale: str) -> tuple[bytes, str]:
    tok = _tokenizer(rng)
    obj = rng.choice([tok, tok.encode(" ".join(words(rng, 6))), tok.model])
    return dump(obj, rng)


@source("sentence-transformers", "sentence_transformers", "torch")
def sentence_transformers_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A SentenceTransformer of local modules (no hub): pooling head, dense, normalize."""
    import torch
    from sentence_transformers import SentenceTransformer, models  # type: ignore[attr-defined]

    torch.manual_seed(rng.randrange(2**31))
    dim = rng.choice([8, 16, 32])
    modules = [models.Dense(dim, dim), models.Normalize()]
    if rng.random() < 0.5:
        modules.insert(0, models.Pooling(dim, pooling_mode=rng.choice(["mean", "max", "cls"])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = SentenceTransformer(modules=modules, device="cpu")
    if rng.random() < 0.5:
        return torch_save(st, rng)
    return pickle.dumps(st, protocol=rng.randint(2, 5)), ".pkl"


SOURCES = [gensim_models, nltk_objects, crfsuite_taggers, spacy_objects, thinc_objects,
           transformers_models, tokenizers_objects, sentence_transformers_models]  # fmt: skip
