// `hyperlab logout`: forgets the credentials docker's config.json keeps for
// a registry, as docker logout does.
import { removeCredentials } from "../containers/node-credentials.ts";
import { parseVerb } from "./args.ts";
import { type Verb, write } from "./verb.ts";

const USAGE = "hyperlab logout SERVER";
const HELP = `Usage: ${USAGE}

Removes the credentials for the registry SERVER from
$DOCKER_CONFIG/config.json (default ~/.docker/config.json).
`;

export const logoutVerb: Verb = {
  name: "logout",
  summary: "log out from a registry",
  run: async (args) => {
    const parsed = parseVerb("logout", USAGE, args, { options: {}, positionals: { min: 1, max: 1 } });
    if (parsed === "help") return write(HELP), 0;
    const server = parsed.positionals[0]!;
    write((await removeCredentials(server)) ? `Removing login credentials for ${server}\n` : `Not logged in to ${server}\n`);
    return 0;
  },
};
