"""Classical ML: scikit-learn (many estimators, pipelines, ColumnTransformer, text), joblib,
xgboost, lightgbm, catboost, hmmlearn, imbalanced-learn, optuna, river."""

from __future__ import annotations

import random
import warnings
from typing import Any

from ._base import dump, joblib_dump, sentences, size, source


def _xy(rng: random.Random, scale: str, classes: int = 2) -> tuple[Any, Any]:
    import numpy as np

    g = np.random.default_rng(rng.randrange(2**32))
    n = size(rng, scale, 30, 120)
    X = g.normal(size=(n, rng.randint(2, 6)))
    y = (X[:, 0] + g.normal(scale=0.3, size=n) > 0).astype(int)
    if classes > 2:
        y = y + (X[:, 1] > 0.5)
    return X, y


def _save(obj: Any, rng: random.Random) -> tuple[bytes, str]:
    return joblib_dump(obj, rng) if rng.random() < 0.5 else dump(obj, rng, (".pkl", ".sav"))


@source("scikit-learn", "sklearn")
def sklearn_breadth(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Estimators, pipelines, ColumnTransformer and text vectorizers users ship."""
    import numpy as np
    import pandas as pd
    from sklearn import (
        cluster,
        compose,
        decomposition,
        ensemble,
        feature_extraction,
        impute,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,  # fmt: skip
        svm,
        tree,
    )

    np.random.seed(rng.randrange(2**32))  # estimators left at random_state=None draw from it
    X, y = _xy(rng, scale)
    kind = rng.choice(["tfidf", "column", "pipeline", "model", "cluster"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "tfidf":
            docs = [" ".join(s) for s in sentences(rng, 30)]
            vec = rng.choice(
                [
                    feature_extraction.text.TfidfVectorizer(ngram_range=(1, 2)),
                    feature_extraction.text.CountVectorizer(),
                    feature_extraction.text.HashingVectorizer(n_features=64),
                ]
            )
            est: Any = pipeline.make_pipeline(vec, linear_model.LogisticRegression())
            est.fit(docs, [i % 2 for i in range(len(docs))])
        elif kind == "column":
            frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": (X[:, 0] > 0).astype(str)})
            ct = compose.ColumnTransformer([
                ("num", preprocessing.StandardScaler(), ["a", "b"]),
                ("cat", preprocessing.OneHotEncoder(handle_unknown="ignore"), ["c"]),
            ])  # fmt: skip
            est = pipeline.Pipeline([("prep", ct), ("clf", tree.DecisionTreeClassifier())])
            est.fit(frame, y)
        elif kind == "pipeline":
            est = pipeline.make_pipeline(
                impute.SimpleImputer(),
                preprocessing.PolynomialFeatures(2),
                decomposition.PCA(2),
                svm.SVC(probability=True),
            )
            est.fit(X, y)
        elif kind == "model":
            est = rng.choice([
                ensemble.GradientBoostingClassifier(n_estimators=5),
                ensemble.HistGradientBoostingClassifier(max_iter=5),
                ensemble.ExtraTreesClassifier(n_estimators=3),
                neighbors.KNeighborsClassifier(3), naive_bayes.GaussianNB(),
                neural_network.MLPClassifier((8,), max_iter=20),
                linear_model.SGDClassifier(), ensemble.IsolationForest(n_estimators=5),
            ])  # fmt: skip
            est.fit(X, y)
        else:
            est = rng.choice(
                [cluster.KMeans(3, n_init=1), cluster.DBSCAN(), cluster.AgglomerativeClustering(2)]
            ).fit(X)
    return _save(est, rng)


@source("joblib")
def joblib_arrays(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """joblib.dump of array-heavy plain data (the NumpyArrayWrapper layout), every compressor."""
    import numpy as np

    g = np.random.default_rng(rng.randrange(2**32))
    n = size(rng, scale, 4, 100)
    obj = {"emb": g.random((n, 8), dtype=np.float32), "ids": np.arange(n), "meta": {"n": n},
           "labels": np.array(["x", "y"] * (n // 2 + 1), dtype=object)}  # fmt: skip
    return joblib_dump(obj, rng)


@source("xgboost")
def xgboost_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import xgboost as xgb

    X, y = _xy(rng, scale)
    if rng.random() < 0.5:
        est: Any = xgb.XGBClassifier(n_estimators=rng.randint(2, 8), max_depth=3, n_jobs=1)
        est.fit(X, y)
    else:
        est = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 3)
    return _save(est, rng)


@source("lightgbm")
def lightgbm_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import lightgbm as lgb

    X, y = _xy(rng, scale)
    est: Any = lgb.LGBMClassifier(n_estimators=rng.randint(2, 8), n_jobs=1, verbose=-1,
                                  min_child_samples=5)  # fmt: skip
    est.fit(X, y)
    return _save(est if rng.random() < 0.6 else est.booster_, rng)


@source("catboost")
def catboost_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    import catboost

    X, y = _xy(rng, scale)
    maker = rng.choice([catboost.CatBoostClassifier, catboost.CatBoostRegressor])
    est = maker(iterations=rng.randint(2, 6), depth=2, verbose=False, thread_count=1,
                allow_writing_files=False, random_seed=rng.randrange(1000))  # fmt: skip
    est.fit(X, y)
    return _save(est, rng)


@source("hmmlearn")
def hmmlearn_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from hmmlearn import hmm

    X, _ = _xy(rng, scale)
    maker = rng.choice([hmm.GaussianHMM, hmm.GMMHMM])
    model = maker(n_components=2, n_iter=3, random_state=rng.randrange(1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return _save(model, rng)


@source("imbalanced-learn", "imblearn")
def imblearn_pipelines(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from imblearn import over_sampling, pipeline, under_sampling
    from sklearn.linear_model import LogisticRegression

    X, y = _xy(rng, scale)
    state = rng.randrange(1000)
    sampler = rng.choice([over_sampling.RandomOverSampler(random_state=state),
                          over_sampling.SMOTE(k_neighbors=2, random_state=state),
                          under_sampling.RandomUnderSampler(random_state=state)])  # fmt: skip
    est = pipeline.make_pipeline(sampler, LogisticRegression()).fit(X, y)
    return _save(est, rng)


@source("optuna")
def optuna_studies(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A finished in-memory study pickled (how notebooks keep a search)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.TPESampler(seed=rng.randrange(1000))
    study = optuna.create_study(sampler=sampler, direction=rng.choice(["minimize", "maximize"]))
    study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2, n_trials=rng.randint(2, 6))
    return _save(study if rng.random() < 0.5 else study.best_trial, rng)


@source("river")
def river_models(rng: random.Random, scale: str) -> tuple[bytes, str]:
    from river import linear_model, preprocessing, tree

    X, y = _xy(rng, scale)
    model = preprocessing.StandardScaler() | rng.choice(
        [linear_model.LogisticRegression(), tree.HoeffdingTreeClassifier()])  # fmt: skip
    for row, label in zip(X.tolist(), y.tolist(), strict=True):
        model.learn_one(dict(enumerate(row)), bool(label))
    return dump(model, rng)


SOURCES = [sklearn_breadth, joblib_arrays, xgboost_models, lightgbm_models, catboost_models,
           hmmlearn_models, imblearn_pipelines, optuna_studies, river_models]  # fmt: skip
