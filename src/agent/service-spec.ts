// The agent on every node: one Swarm service per node, pinned to it by its node id, described here and deployed by
// agent/deploy.ts: this file only says what a service is. Not one global service: the secrets of a service reach every
// one of its tasks, so every node would hold every other node's enrolment token, and root on one node could enrol as
// another before that one's agent does (an outside review of issue 15). Each node's service holds its own token only. What the agent needs of its node, read-only: the cgroup
// hierarchy, /proc and the powercap (RAPL) files, mounted under /host as node-exporter mounts them; Docker's socket to
// know which container is which instance (labels) and, in a task's own PID namespace, each container's host pid.
// /sys is mounted whole (read-only), not /sys/class/powercap alone: a node without RAPL has no such folder (a bind
// of a missing source fails the task), and powercap's entries are links into /sys/devices.
// The socket is the one grant that is not read-only in effect (Docker's API has no read-only mode): docs/energy.md
// says so, and why a node's agent is trusted with it (it is the node's own engine, on a node cattery runs).
import { fail } from '../errors.js';
export interface AgentServiceOptions {
  hosterId: string;
  /** The image holding cattery (its entry point `cattery`). */
  image: string;
  /** The manager's address as the nodes reach it (https). */
  manager: string;
  /** The Swarm node this agent runs on (its id: hostnames can repeat). */
  nodeId: string;
  /** A Swarm secret holding this node's one-time enrolment token alone; none once it is enrolled (its key and
   * enrolment are in its state volume). */
  tokenSecret?: { id: string; name: string } | undefined;
  intervalSeconds?: number;
  /** A Swarm config holding the certificate (PEM) the nodes trust for the manager's https, when it is not signed by a
   * public authority (a hoster's own CA): given to node as NODE_EXTRA_CA_CERTS, added to its trusted roots. */
  managerCa?: { id: string; name: string };
}

export const AGENT_STATE_DIR = '/var/lib/cattery-agent';
const TOKEN_FILE = 'cattery-agent-token';
const NODE_ID = /^[a-z0-9]{25}$/;

/** The agent service of one node. */
export const agentServiceName = (hosterId: string, nodeId: string) => `${hosterId}-agent-${nodeId}`;
const CA_FILE = '/etc/cattery-agent/manager-ca.pem';

/** The CreateService body (Engine API 1.41, Docker 20.10). A plain object, so that it can be compared and tested. */
export function agentServiceSpec(o: AgentServiceOptions) {
  if (!NODE_ID.test(o.nodeId)) throw fail('CATTERY_ERR_VALIDATION', `"${o.nodeId.slice(0, 40)}" is not a Swarm node id`);
  const env: Record<string, string> = {
    CATTERY_AGENT_MANAGER: o.manager,
    ...(o.tokenSecret ? { CATTERY_AGENT_TOKEN_FILE: `/run/secrets/${TOKEN_FILE}` } : {}),
    CATTERY_AGENT_NODE: '{{.Node.Hostname}}',
    CATTERY_AGENT_DIR: AGENT_STATE_DIR,
    CATTERY_AGENT_INTERVAL_S: String(o.intervalSeconds ?? 10),
    CATTERY_AGENT_CGROUP_ROOT: '/host/sys/fs/cgroup',
    CATTERY_AGENT_PROC_ROOT: '/host/proc',
    CATTERY_AGENT_POWERCAP_ROOT: '/host/sys/class/powercap',
    CATTERY_DOCKER: 'unix:///var/run/docker.sock',
    ...(o.managerCa ? { NODE_EXTRA_CA_CERTS: CA_FILE } : {}),
  };
  const labels = { 'cattery.hoster': o.hosterId, 'cattery.role': 'agent' };
  const serviceLabels = { ...labels, 'cattery.node': o.nodeId };
  const ro = (source: string, target: string) => ({ Type: 'bind', Source: source, Target: target, ReadOnly: true });
  return {
    Name: agentServiceName(o.hosterId, o.nodeId),
    Labels: serviceLabels,
    Mode: { Replicated: { Replicas: 1 } },
    TaskTemplate: {
      Placement: { Constraints: [`node.id==${o.nodeId}`] },
      ContainerSpec: {
        Image: o.image,
        Args: ['agent', 'run'],
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: labels,
        ReadOnly: true,
        // Root inside the task reads other processes' /proc entries; it needs no capability beyond that.
        CapabilityDrop: ['ALL'],
        Privileges: { NoNewPrivileges: true },
        Mounts: [
          ro('/sys', '/host/sys'),
          ro('/proc', '/host/proc'),
          { Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock', ReadOnly: true },
          // The node's key and enrolment outlive the task: a volume of the node's own (0700 inside, agent.ts).
          { Type: 'volume', Source: `${o.hosterId}-agent-state`, Target: AGENT_STATE_DIR, VolumeOptions: { Labels: labels } },
        ],
        Secrets: o.tokenSecret ? [{ SecretID: o.tokenSecret.id, SecretName: o.tokenSecret.name, File: { Name: TOKEN_FILE, UID: '0', GID: '0', Mode: 0o400 } }] : [],
        ...(o.managerCa ? { Configs: [{ ConfigID: o.managerCa.id, ConfigName: o.managerCa.name, File: { Name: CA_FILE, UID: '0', GID: '0', Mode: 0o444 } }] } : {}),
      },
      Resources: { Limits: { MemoryBytes: 128 * 1024 * 1024, NanoCPUs: 250_000_000 } },
      RestartPolicy: { Condition: 'any', Delay: 10_000_000_000 },
    },
  };
}

