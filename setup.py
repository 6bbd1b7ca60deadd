"""Packaging for tahoe-governor: a governed Tahoe-LAFS backup node."""

from setuptools import find_packages, setup

setup(
    name="tahoe-governor",
    version="0.1.0",
    description=(
        "Scheduled, bandwidth- and CPU-governed backups inside a Tahoe-LAFS node "
        "(Tahoe-LAFS #1018, Foolscap #41)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    python_requires=">=3.11",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    install_requires=[
        # tahoe-lafs is pinned to the release the suite is tested against:
        # the node integration reaches into its internals.
        "tahoe-lafs==1.20.0",
        "twisted[tls]>=23.10",
        "foolscap>=23.11",
        "pyOpenSSL",
        "numpy>=1.26",
        "prometheus-client>=0.20",
        "psutil>=5.9",
        # the restore's progress bar (files, bytes, ETA); Tahoe already brings it in
        # through magic-wormhole.
        "tqdm>=4.60",
        "attrs>=23.1",
        # zoneinfo's IANA data where the system has none (allowed times are local).
        "tzdata>=2024.1",
    ],
    extras_require={
        # testtools and fixtures: tahoe-lafs's own test grid (allmydata.test.no_network);
        # selenium drives Debian's chromium/chromedriver in the browser test
        # (4.52 needs a certifi newer than the registry here serves).
        "test": [
            "pytest>=8", "hypothesis>=6.100", "treq>=23.11", "testtools", "fixtures",
            "selenium>=4.20",
        ],
    },
    entry_points={
        "console_scripts": ["tahoe-governor = tahoe_governor.cli.main:main"],
    },
)
