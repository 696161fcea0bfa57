package testenv

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// BucketRequests is MinIO's count of S3 API calls on bucket, by API name
// (minio_bucket_api_total of its v3 metrics): what reached the bucket,
// whoever sent it.
func (m *MinIO) BucketRequests(ctx context.Context, bucket string) (map[string]float64, error) {
	token, err := m.metricsToken()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Endpoint+"/minio/metrics/v3/bucket/api/"+bucket, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("MinIO bucket metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("MinIO bucket metrics: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("MinIO bucket metrics: %w", err)
	}
	out := map[string]float64{}
	if f := families["minio_bucket_api_total"]; f != nil {
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["bucket"] == bucket {
				out[labels["name"]] += s.GetCounter().GetValue() + s.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}

// metricsToken is the bearer token MinIO's Prometheus endpoints take
// (what `mc admin prometheus generate` prints): a JWT signed with the
// secret key.
func (m *MinIO) metricsToken() (string, error) {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT"}`))
	claims, err := json.Marshal(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "sub": m.AccessKey, "iss": "prometheus"})
	if err != nil {
		return "", err
	}
	unsigned := header + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha512.New, []byte(m.SecretKey))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil)), nil
}
