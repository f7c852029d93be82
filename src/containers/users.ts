// Docker's --user: `name`, `uid`, `name:group`, `uid:gid`, resolved against
// the container's own /etc/passwd and /etc/group as Docker does it.
import { HyperlabError } from "../errors.ts";

/** The user a container's process runs as. */
export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

const NUMBER = /^\d+$/;

/** Lines of a passwd/group file: name, then the colon-separated fields. */
function entries(text: string | undefined): string[][] {
  return (text ?? "")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

/**
 * Resolves `spec` ("user", "uid", "user:group", "uid:gid", …) with the
 * container's passwd and group files (undefined: the file is not in the
 * image). A numeric uid not in passwd is allowed (gid 0 unless given), as in
 * Docker; a name that is not there is INVALID_ARGUMENT naming it.
 */
export function resolveUser(spec: string, files: { passwd?: string; group?: string }): ProcessUser {
  const [userPart, groupPart] = spec.split(":", 2) as [string, string | undefined];
  if (!userPart) throw new HyperlabError("INVALID_ARGUMENT", `invalid user '${spec}': give a user name or uid, optionally ':group'`);
  const passwd = entries(files.passwd);
  const byUser = passwd.find((e) => (NUMBER.test(userPart) ? e[2] === userPart : e[0] === userPart));
  if (!byUser && !NUMBER.test(userPart)) {
    throw new HyperlabError("INVALID_ARGUMENT", `unable to find user ${userPart}: no matching entries in passwd file`);
  }
  const uid = byUser ? Number(byUser[2]) : Number(userPart);
  let gid = byUser ? Number(byUser[3]) : 0;
  const groups = entries(files.group);
  if (groupPart !== undefined) {
    const byGroup = groups.find((e) => (NUMBER.test(groupPart) ? e[2] === groupPart : e[0] === groupPart));
    if (!byGroup && !NUMBER.test(groupPart)) {
      throw new HyperlabError("INVALID_ARGUMENT", `unable to find group ${groupPart}: no matching entries in group file`);
    }
    gid = byGroup ? Number(byGroup[2]) : Number(groupPart);
  }
  // The groups that name the user as a member, as login would give them.
  const name = byUser?.[0];
  const additionalGids = name ? groups.filter((e) => (e[3] ?? "").split(",").includes(name)).map((e) => Number(e[2])).filter((g) => g !== gid) : [];
  return additionalGids.length ? { uid, gid, additionalGids } : { uid, gid };
}
