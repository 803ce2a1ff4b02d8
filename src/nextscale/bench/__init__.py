"""Speed measurement, apart from evaluation: `generation` (the AAR vs next-token harness), `measure`
(synchronised timing, peak memory, machine facts, the bandwidth floor) and `table` (terminal and
markdown views of a report)."""
