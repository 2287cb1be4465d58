/** Look again every 10 ms until `ok` (another process's start or end has no event to wait on); the test's timeout bounds it. */
export async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 10));
}
