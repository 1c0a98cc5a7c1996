'use strict';
// Run before `npm start` and `npm test` (pre-scripts): on a Node.js line the project does not
// support, say so and what to do, instead of failing later with an obscure syntax or API error.
// Plain CommonJS with no dependencies, so it runs on any Node that can run npm.
const { engines } = require('../package.json');

/** Does `version` (x.y.z) satisfy `range`, written as `^x.y.z` and `>=x.y.z` alternatives joined by `||`? */
function satisfies(version, range) {
  const parse = (v) => v.split('.').map(Number);
  const [major, minor, patch] = parse(version);
  const atLeast = (min) => (major !== min[0] ? major > min[0] : minor !== min[1] ? minor > min[1] : patch >= min[2]);
  return range.split('||').some((part) => {
    const m = /^\s*(\^|>=)\s*(\d+)\.(\d+)\.(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`check-node: cannot read the engines range part '${part.trim()}'`);
    const min = [Number(m[2]), Number(m[3]), Number(m[4])];
    return atLeast(min) && (m[1] === '>=' || major === min[0]);
  });
}

function main() {
  const current = process.versions.node;
  if (satisfies(current, engines.node)) return;
  process.stderr.write(
    [
      `Rampart needs Node.js ${engines.node}; this is Node.js ${current}.`,
      'Install a supported line (the version in .nvmrc is the one CI and the Docker image run):',
      '  nvm install            # with nvm, reads .nvmrc',
      '  export PATH="$(scripts/node-from-npm "$(cat .nvmrc)"):$PATH"   # Linux x64, from the npm registry',
      'then run `npm ci` again, since dependencies are installed for the Node that runs npm.',
      '',
    ].join('\n'),
  );
  process.exitCode = 1;
}

if (require.main === module) main();
module.exports = { satisfies };
