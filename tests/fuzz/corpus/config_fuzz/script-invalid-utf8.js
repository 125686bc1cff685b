import http fro} 'k6/http';
// The k6 Cloud page's example, as a script.
export let options = {
  vus: Number(__ENV.VUS) || 10,
  ext: {
    loadimpact: {
      apm: [
        {
          provider: "prometheus",
          remoteWriteURL: 'http://127.0.0.1:9090/api/v1/write?x=1', // query allowed
          credentials: { token: __ENV.SET_TOKEN, },
          metrics: ["http_req_sendiÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿng", 'my_rate', { sourceMetric: 'http_req_duration{status="500"}', targetMetric: `k6_errors`, keepTags: ['name',], }, "*"],
          includeDefaultMetrics: true,
          includeTestRunId: true,
          testRunIdLabel: 'testid',
          labels: { env: 'staging', team: "checkout" },
          sigv4: undefined,
          resampleRate: 0x3, /* hex */
    }
  ,        ]
    },
  },
};
export default function () { http.get(`${__ENV.BASE}/`); }
