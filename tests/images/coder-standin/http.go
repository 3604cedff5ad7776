package main

import (
	"encoding/json"
	"net/http"
)

// buildInfo has the field names of Coder's codersdk.BuildInfoResponse
// (GET /api/v2/buildinfo).
type buildInfo struct {
	ExternalURL           string `json:"external_url"`
	Version               string `json:"version"`
	DashboardURL          string `json:"dashboard_url"`
	Telemetry             bool   `json:"telemetry"`
	WorkspaceProxy        bool   `json:"workspace_proxy"`
	AgentAPIVersion       string `json:"agent_api_version"`
	ProvisionerAPIVersion string `json:"provisioner_api_version"`
	UpgradeMessage        string `json:"upgrade_message"`
	DeploymentID          string `json:"deployment_id"`
	// Not in Coder's response: what the stand-in plays.
	Standin standinInfo `json:"standin"`
}

type standinInfo struct {
	Flavour         string `json:"flavour"`
	KnownMigration  int    `json:"known_migration"`
	Ready           bool   `json:"ready"`
	MaxOpen         int    `json:"max_open_connections"`
	MaxIdle         int    `json:"max_idle_connections"`
	ApplicationName string `json:"application_name"`
}

// handler serves:
//
//	/healthz, /readyz, /cem-healthz  200 "OK" once connected and the schema is current, else 503
//	/livez                           200 "OK" always
//	/api/v2/buildinfo                JSON, always
//
// None of them touches the database.
func handler(st *state) http.Handler {
	mux := http.NewServeMux()
	ready := func(w http.ResponseWriter, _ *http.Request) {
		ok, _ := st.get()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready"))
			return
		}
		_, _ = w.Write([]byte("OK"))
	}
	mux.HandleFunc("GET /healthz", ready)
	mux.HandleFunc("GET /readyz", ready)
	mux.HandleFunc("GET /cem-healthz", ready)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("GET /api/v2/buildinfo", func(w http.ResponseWriter, _ *http.Request) {
		ok, depID := st.get()
		v := "v" + st.cfg.Version.String()
		bi := buildInfo{
			ExternalURL:  "https://github.com/coder/coder/releases/tag/" + v,
			Version:      v,
			DashboardURL: st.cfg.AccessURL,
			DeploymentID: depID,
			Standin: standinInfo{
				Flavour: st.cfg.Flavour, KnownMigration: st.cfg.Known, Ready: ok,
				MaxOpen: st.cfg.MaxOpen, MaxIdle: st.cfg.MaxIdle, ApplicationName: st.cfg.AppName,
			},
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(bi)
	})
	return mux
}
