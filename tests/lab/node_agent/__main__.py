"""`python -m tests.lab.node_agent --config FILE`: run one master's node agent until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from tests.lab.node_agent.agent import NodeAgent
from tests.lab.node_agent.config import AgentConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s: %(message)s")
    agent = NodeAgent(AgentConfig.load(args.config))
    # SIGTERM (ManagedProcess.stop, cleanup) stops every pod with its grace period, then exits.
    signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop_event.set())
    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
