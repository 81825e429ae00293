"""The node agent: runs on a provider's GPU node, registers its cards, runs and meters work.

Hardware and metering layers: `gpu` (the node's accelerators behind one small interface), `meter`
(pure: samples → a job's usage and its CloudEvent), `calibrate` (measured matmul TFLOPS per card) and
`outbox` (usage events kept on disk until the control plane has them).
"""
