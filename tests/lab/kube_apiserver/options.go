package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/spf13/pflag"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	apiserverconfig "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/klog/v2"

	"tke-kms.lab/kube-apiserver/openapi"
)

// kube-apiserver's flags that belong to parts this server does not have (admission, kubelet,
// service accounts, service IPs, RBAC, aggregation, …). Accepted so a kubeadm manifest starts it;
// they have no effect.
var ignoredFlags = []string{
	"admission-control-config-file", "api-audiences", "audit-log-maxage", "audit-log-maxbackup",
	"audit-log-maxsize", "audit-log-path", "audit-policy-file", "authorization-config",
	"authorization-mode", "disable-admission-plugins", "enable-admission-plugins",
	"endpoint-reconciler-type", "kubelet-certificate-authority", "kubelet-client-certificate",
	"kubelet-client-key", "kubelet-preferred-address-types", "oidc-client-id", "oidc-issuer-url",
	"oidc-username-claim", "proxy-client-cert-file", "proxy-client-key-file", "runtime-config",
	"service-account-issuer", "service-account-key-file", "service-account-signing-key-file",
	"service-cluster-ip-range", "service-node-port-range", "token-auth-file",
}

var ignoredBoolFlags = []string{
	"allow-privileged", "anonymous-auth", "enable-aggregator-routing", "enable-bootstrap-token-auth",
	"service-account-lookup",
}

type serverOptions struct {
	serverRun     *genericoptions.ServerRunOptions
	secureServing *genericoptions.SecureServingOptionsWithLoopback
	etcd          *genericoptions.EtcdOptions
	clientCert    *genericoptions.ClientCertAuthenticationOptions
	requestHeader *genericoptions.RequestHeaderAuthenticationOptions
	profiling     bool
}

func newServerOptions() *serverOptions {
	etcd := genericoptions.NewEtcdOptions(storagebackend.NewDefaultConfig("/registry", nil))
	etcd.DefaultStorageMediaType = "application/vnd.kubernetes.protobuf" // as kube-apiserver stores core objects
	serving := genericoptions.NewSecureServingOptions().WithLoopback()
	serving.BindPort = 6443
	return &serverOptions{
		serverRun:     genericoptions.NewServerRunOptions(),
		secureServing: serving,
		etcd:          etcd,
		clientCert:    &genericoptions.ClientCertAuthenticationOptions{},
		requestHeader: &genericoptions.RequestHeaderAuthenticationOptions{},
		profiling:     true,
	}
}

func (o *serverOptions) addFlags(fs *pflag.FlagSet) {
	o.serverRun.AddUniversalFlags(fs) // includes --feature-gates
	o.secureServing.AddFlags(fs)
	o.etcd.AddFlags(fs) // includes --encryption-provider-config[-automatic-reload]
	o.clientCert.AddFlags(fs)
	o.requestHeader.AddFlags(fs)
	fs.BoolVar(&o.profiling, "profiling", o.profiling, "Enable profiling via web interface host:port/debug/pprof/")
	for _, name := range ignoredFlags {
		fs.String(name, "", "kube-apiserver flag, accepted and ignored by the lab apiserver")
	}
	for _, name := range ignoredBoolFlags {
		fs.Bool(name, false, "kube-apiserver flag, accepted and ignored by the lab apiserver")
	}
	logFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(logFlags)
	fs.AddGoFlagSet(logFlags)
}

func (o *serverOptions) validate() error {
	var errs []error
	errs = append(errs, o.serverRun.Validate()...)
	errs = append(errs, o.secureServing.Validate()...)
	errs = append(errs, o.etcd.Validate()...)
	errs = append(errs, o.requestHeader.Validate()...)
	return utilerrors.NewAggregate(errs)
}

func (o *serverOptions) config() (*genericapiserver.Config, error) {
	if err := o.serverRun.Complete(); err != nil {
		return nil, err
	}
	if err := o.serverRun.DefaultAdvertiseAddress(o.secureServing.SecureServingOptions); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	config := genericapiserver.NewConfig(codecs)
	// The OpenAPI models drive server-side apply and kubectl's validation; the definitions are
	// generated at build time from k8s.io/api (tests/lab/build/kube-v2.sh runs openapi-gen).
	namer := openapinamer.NewDefinitionNamer(scheme)
	config.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	config.OpenAPIConfig.Info.Title = "Kubernetes"
	config.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	config.OpenAPIV3Config.Info.Title = "Kubernetes"
	config.EnableProfiling = o.profiling
	config.EnableMetrics = true
	if err := o.serverRun.ApplyTo(config); err != nil {
		return nil, err
	}
	if err := o.secureServing.ApplyTo(&config.SecureServing, &config.LoopbackClientConfig); err != nil {
		return nil, err
	}
	if err := o.applyAuthentication(config); err != nil {
		return nil, err
	}
	config.Authorization.Authorizer = labAuthorizer{}
	o.etcd.StorageConfig.Codec = storageCodec()
	o.etcd.StorageConfig.EncodeVersioner = coreV1
	if err := o.etcd.ApplyTo(config); err != nil {
		return nil, err
	}
	return config, nil
}

// applyAuthentication: client certificates (--client-ca-file) and the front proxy's request
// headers (--requestheader-*), anonymous requests allowed in as system:anonymous, as in kube-apiserver.
func (o *serverOptions) applyAuthentication(config *genericapiserver.Config) error {
	clientCA, err := o.clientCert.GetClientCAContentProvider()
	if err != nil {
		return err
	}
	requestHeader, err := o.requestHeader.ToAuthenticationRequestHeaderConfig()
	if err != nil {
		return err
	}
	authenticator, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                          &apiserverconfig.AnonymousAuthConfig{Enabled: true},
		ClientCertificateCAContentProvider: clientCA,
		RequestHeaderConfig:                requestHeader,
	}.New()
	if err != nil {
		return err
	}
	config.Authentication.Authenticator = authenticator
	if clientCA == nil {
		return nil
	}
	return config.Authentication.ApplyClientCert(clientCA, config.SecureServing)
}

func (o *serverOptions) run(ctx context.Context) error {
	config, err := o.config()
	if err != nil {
		return err
	}
	server, err := config.Complete(nil).New("kube-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	stores, err := installCoreAPI(server, config.RESTOptionsGetter)
	if err != nil {
		return fmt.Errorf("installing /api/v1: %w", err)
	}
	if err := server.AddPostStartHook("bootstrap-namespaces", stores.bootstrapNamespaces); err != nil {
		return err
	}
	return server.PrepareRun().RunWithContext(ctx)
}
