"""The lab's kubelet stand-in: runs a chroot master's static pods and the pods bound to its Node.

`python -m tests.lab.node_agent --config FILE` (see config.py); started per master by
tests/lab/masters.py. Behaviour follows the kubelet where Ansible roles can observe it: which
manifest files run, when a static pod restarts, crash-loop back-off, probes, mirror pods, pod status.
"""
