/**
 * The scale-out projection of `bench/scale-out.ts`: from the CPU seconds each process of a streaming
 * job spent per million records, the records/s a machine with more cores would carry, and what would
 * cap it there.
 */
/** The processes whose CPU is counted, in table order. */
export const PROCESSES = ["server", "worker", "shim", "broker"] as const;
export type Process = (typeof PROCESSES)[number];

/** CPU seconds per million records of each process, and the drain's own figures. */
export interface CpuProfile {
  perMillion: Record<Process, number>;
  recordsPerSecond: number;
  /** Busy CPU seconds of the whole machine during the drain (other work included). */
  machineSeconds: number;
  seconds: number;
}

/** One projected machine size: the records/s its cores allow, and what caps it there. */
export interface Projection {
  cores: number;
  recordsPerSecond: number;
  bottleneck: string;
}

/**
 * What `cores` cores would carry if the CPU per record stayed as measured: every process but the
 * shim spreads over the cores (replicated workers, server services, brokers), while the shim, one
 * JavaScript thread per job, can use one core at most.
 */
export function project(profile: CpuProfile, cores: number): Projection {
  const total = PROCESSES.reduce((s, p) => s + profile.perMillion[p], 0);
  const allCores = (cores * 1e6) / total;
  const shimCap = 1e6 / profile.perMillion.shim;
  if (shimCap < allCores) return { cores, recordsPerSecond: shimCap, bottleneck: "the job's one shim (one core); more jobs or shims per job" };
  const heaviest = [...PROCESSES].sort((a, b) => profile.perMillion[b] - profile.perMillion[a])[0]!;
  const share = profile.perMillion[heaviest] / total;
  return { cores, recordsPerSecond: allCores, bottleneck: `CPU; the ${heaviest} takes ${(share * 100).toFixed(0)}% of it` };
}
