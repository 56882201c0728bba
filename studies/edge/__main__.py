"""``python -m studies.edge``: the edge agent without Django (same options as the command)."""

from __future__ import annotations

import argparse
import logging
import sys

from studies.edge.agent import GaveUp, run_agent
from studies.edge.config import ConfigError, add_arguments, config_from_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.edge", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO")
    options = vars(parser.parse_args(argv))
    logging.basicConfig(
        level=options.pop("log_level").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config = config_from_options(options)
        report = run_agent(config, once=bool(options.get("once")))
    except ConfigError as exc:
        parser.error(str(exc))
    except GaveUp as exc:
        logging.getLogger("studies.edge").error("gave up: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    logging.getLogger("studies.edge").info(
        "done: %d confirmed, %d failed, %d deleted, cursor %d, backlog %d",
        len(report.confirmed),
        len(report.failed),
        len(report.deleted),
        report.cursor,
        report.backlog,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
