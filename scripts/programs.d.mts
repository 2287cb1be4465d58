/** Each program scripts/build.mjs bundles, as [its entry, its bundle], paths from the repository's root; see programs.mjs. */
export const esmPrograms: [string, string][];
export const emulatorPrograms: [string, string][];
export const programs: [string, string][];
