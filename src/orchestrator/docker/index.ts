// The one Docker surface of cattery: everything outside src/orchestrator/docker/ reaches the engine through what this
// file exports, and no other file imports dockerode (types included: they are re-exported here).
import type Docker from 'dockerode';

export type DockerClient = Docker;
export type ContainerInfo = Docker.ContainerInfo;
export type ContainerCreateOptions = Docker.ContainerCreateOptions;

export {
  LABEL_GENERATION, LABEL_HOLDS, LABEL_HOSTER, LABEL_INSTANCE, LABEL_ROLE, LABEL_SERVICE, ROLE_ARCHIVE, ROLE_BACKUP, ROLE_INGRESS, call, connectEngine, dockerOptions, engineCertsDir, isPlainRemoteEndpoint, isTlsEndpoint,
  ensureNetwork, ensureNetworkRemoved, ensureVolume, ensureVolumeRemoved, imageExists, isLocalEndpoint, isOurs,
  listManaged, networkExists, ping, removeNetwork, statusOf, translateDockerError, unless, type Engine, type Managed,
} from './engine.js';
export {
  containerPid, createOrAdopt, pauseHeld, ensureContainerRemoved, ensureStarted, ensureStopped, pauseContainer, restartContainer, unpauseContainer,
  runningInstanceContainers, unitOf, unitState, type Adoption, type Unit, type UnitState,
} from './containers.js';
export { parseEventChunk, watchContainerEvents, type InstanceEvent } from './events.js';
export { CONTAINER_LOG, containerName, instanceLabels, networkName, volumeName, buildContainerSpec, environmentOf } from './container-spec.js';
export { containerRuntime, type InstanceRuntime, type UnitWanted } from './instance-runtime.js';
export { swarmRuntime } from './swarm-runtime.js';
export { archiveVolumeTo, archiveVolumes } from './archive.js';
export { LABEL_FILES_OF, fillVolume, sweepFileVolumes, type FileVolume } from './file-volume.js';
export { probeBind, runOneShot, type OneShotMount, type OneShotResult, type OneShotSpec } from './one-shot.js';
export {
  containersUsingVolume, findOurVolume, imagesInUse, listImages, listOurVolumes, removeImageRef, removeVolume, type ImageInfo, type VolumeInfo,
} from './inventory.js';
export {
  LABEL_LINK_SOURCE, LABEL_LINK_TARGET, ROLE_LINK, ensureLinkMembers, ensureLinkNetwork, linkAddresses, linkNetworkName, removeLinkNetwork,
  type LinkNetworkWanted,
} from './link-network.js';
export {
  INGRESS_UID, buildIngressSpec, ensureIngressContainer, ensureIngressNetworks, ingressNames, readIngressFile, removeIngress,
  type IngressContainer, type IngressWanted,
} from './ingress.js';
export { DEFAULT_LIMITS, execFromFile, execToFile, execWithInput, type ExecLimits, type ExecResult } from './exec.js';
export {
  BUSYBOX_PATH, SYSTEM_IMAGES, baseImageRef, buildImages, buildWorkDir, ensureBaseImage, ensureServiceImage, serviceImageRef, systemImage,
  type BuildUnit,
} from './images.js';
export {
  REF as IMAGE_REF, ensureInventory, inventoryFile, inventoryImage, readInventory, softwareDir, type DebianPackage, type NpmPackage, type SoftwareInventory,
} from './software.js';
export { containerStats, statsUsage, type StatsUsage } from './stats.js';
export {
  NODE_LABEL_DISK, NODE_LABEL_NNP, NODE_LABEL_SERVER, NODE_LABEL_SITE, buildOverlaySpec, buildServiceSpec, isStateful, placementConstraints,
  serviceName, swarmRefusals, type SwarmOverlaySpec, type SwarmServiceSpec,
} from './swarm-spec.js';
export {
  ensureImageOn, ensureOverlayNetwork, ensureOverlayRemoved, ensureService, ensureServiceRemoved, ensureSwarmInit, ensureSwarmJoin, findService,
  joinTokens, labelNode, listNodes, overlayOf, scaleService, serviceTasks, swarmState,
  type JoinTokens, type NodeLabels, type NodeView, type SwarmState, type TaskView,
} from './swarm.js';
export { ensureSwarmObject, listSwarmObjects, removeSwarmObjects } from './swarm.js';

// The reconciler's side of Swarm (orchestrator/reconcile.ts, exec-target.ts).
export { listServiceUnits, pinnedServer, runningTask } from './swarm.js';
export { guardRunningNodes, guardServiceName } from './node-guard.js';
