// The setup action's main step: everything is done by setup-rtemu.sh, so
// the same steps run on a laptop and in rtemu's own CI (release/check.sh).
// No npm packages: inputs arrive as INPUT_* variables.
const { run } = require("./run");
run("start");
