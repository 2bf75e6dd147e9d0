const { spawnSync } = require("child_process");
const path = require("path");

// input reads an action input as the runner passes it.
function input(name) {
  return (process.env["INPUT_" + name.replace(/ /g, "_").toUpperCase()] || "").trim();
}

function run(step) {
  const env = Object.assign({}, process.env, {
    RTEMU_VERSION: input("version") || "latest",
    RTEMU_ACTION_API_KEY: input("api-key") || "rt_test_rtemuci0000000000000000000000000",
    RTEMU_ACTION_ADDR: input("addr") || "127.0.0.1:7070",
    RTEMU_ACTION_SSH_ADDR: input("ssh-addr") || "127.0.0.1:2222",
    RTEMU_WAIT_SECONDS: input("wait-seconds") || "90",
    RTEMU_SERVE_ARGS: input("args"),
  });
  const r = spawnSync("bash", [path.join(__dirname, "setup-rtemu.sh"), step], { env, stdio: "inherit" });
  if (r.error) {
    console.log(`::error::setup-rtemu.sh ${step}: ${r.error.message}`);
    process.exit(1);
  }
  process.exit(r.status === null ? 1 : r.status);
}

module.exports = { run };
