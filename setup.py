"""Package layout only; all other metadata is in pyproject.toml.

Besides the code packages `bot` and `index`, wheels ship the repo's top-level `prompts/` and
`corpus/` folders (which stay where they are in the repo) as `corpusbot_data/prompts` and
`corpusbot_data/corpus`, so an installed corpusbot has its prompts and the default corpus.
index/settings.py uses them when it does not run from a checkout.
"""

from setuptools import find_packages, setup

DATA_DIRS = {"corpusbot_data.prompts": "prompts", "corpusbot_data.corpus": "corpus"}

setup(
    packages=find_packages(include=["bot", "bot.*", "index", "index.*"]) + list(DATA_DIRS),
    package_dir=DATA_DIRS,
    package_data={
        "": ["*.json"],  # data next to the code, e.g. bot/answer/decision.json
        "index.assets": ["*.json", "*.md"],
        **{name: ["**/*"] for name in DATA_DIRS},
    },
)
