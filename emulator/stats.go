package emulator

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

type statsJSON struct {
	SandboxID string        `json:"sandboxId"`
	Stats     statsBodyJSON `json:"stats"`
	// rtemu's, beside the hosted stats (whose fields are all numbers):
	// whether the engine enforces the disk, and, where it does not,
	// whether the files are past it.
	DiskLimitEnforced bool `json:"diskLimitEnforced"`
	DiskOverLimit     bool `json:"diskOverLimit"`
}

type statsBodyJSON struct {
	CPUPercent       float64 `json:"cpuPercent"`
	MemoryUsedBytes  int64   `json:"memoryUsedBytes"`
	MemoryTotalBytes int64   `json:"memoryTotalBytes"`
	DiskUsedBytes    int64   `json:"diskUsedBytes"`
	DiskTotalBytes   int64   `json:"diskTotalBytes"`
	Uptime           int64   `json:"uptime"` // seconds
}

func (a *api) sandboxStats(c echo.Context) error {
	sb, st, err := a.svc.Stats(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return reply(c, http.StatusOK, statsJSON{SandboxID: sb.ID, Stats: statsBodyJSON{
		CPUPercent: st.CPUPercent, MemoryUsedBytes: st.MemoryUsedBytes, MemoryTotalBytes: st.MemoryTotalBytes,
		DiskUsedBytes: st.DiskUsedBytes, DiskTotalBytes: st.DiskTotalBytes, Uptime: int64(st.Uptime.Seconds()),
	}, DiskLimitEnforced: st.DiskEnforced, DiskOverLimit: st.DiskOverLimit})
}
