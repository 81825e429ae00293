"""Provider nodes served by the node agent (`suanwang agent`): registration, heartbeats, the launches
assigned to each node and their logs. The controller reaches them through backends/agent.py."""
